/**
 * The operator's door to the suppression list, on its own port (loopback by default) with a bearer
 * token from config:
 *   GET    /suppressions[?reason=hard_bounce&limit=100]   current suppressions, newest first
 *   DELETE /suppressions/<address or address hash>       lift one: tombstone + state reset
 * Lifting goes through the ledger like any other transition, so the tombstone is durable before
 * the address's state is reset.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { HttpLimits } from '../../libs/http/server.ts';
import { addressHash } from '../../libs/mail/verp.ts';
import type { SuppressionReason } from '../../libs/schemas/types.generated.ts';
import { listSuppressions } from './address-store.ts';
import { type Listening, listenHttp, reply } from './http-listener.ts';

const REASONS: readonly SuppressionReason[] = ['hard_bounce', 'soft_bounce', 'complaint', 'manual'];
const HASH = /^[0-9a-f]{64}$/;

export interface SuppressionAdminOptions {
  readonly host: string;
  readonly port: number;
  readonly token: string;
  readonly db: pg.Pool;
  /** Lifts an address's suppression; false if it had none. */
  readonly lift: (addressHash: string) => Promise<boolean>;
  readonly log: Logger;
  readonly limits?: HttpLimits;
}

const MAX_LIMIT = 1000;

/** A path segment naming an address (hashed here) or an address hash; null for anything else. */
export function addressKey(segment: string): string | null {
  let value: string;
  try {
    value = decodeURIComponent(segment).trim();
  } catch {
    return null; // a malformed % escape
  }
  if (HASH.test(value)) return value;
  return value.includes('@') ? addressHash(value) : null;
}

/** `limit` as a whole number 1–1000 (100 when absent); null for anything else. */
export function pageLimit(raw: string | null): number | null {
  if (raw === null) return 100;
  if (!/^\d{1,4}$/.test(raw)) return null;
  const limit = Number(raw);
  return limit >= 1 && limit <= MAX_LIMIT ? limit : null;
}

export async function startSuppressionAdmin(options: SuppressionAdminOptions): Promise<Listening> {
  const expected = Buffer.from(`Bearer ${options.token}`);

  function authorized(req: IncomingMessage): boolean {
    const given = Buffer.from(req.headers.authorization ?? '');
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!authorized(req)) return reply(res, 401, { error: 'bearer token required' });
    const url = new URL(req.url ?? '/', 'http://admin');
    if (req.method === 'GET' && url.pathname === '/suppressions') {
      const reason = url.searchParams.get('reason');
      if (reason !== null && !REASONS.includes(reason as SuppressionReason)) {
        return reply(res, 400, { error: `reason must be one of ${REASONS.join(', ')}` });
      }
      const limit = pageLimit(url.searchParams.get('limit'));
      if (limit === null) return reply(res, 400, { error: `limit must be a whole number 1-${MAX_LIMIT}` });
      const rows = await listSuppressions(options.db, {
        limit,
        ...(reason ? { reason: reason as SuppressionReason } : {}),
      });
      return reply(res, 200, { suppressions: rows });
    }
    const match = /^\/suppressions\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'DELETE' && match) {
      const key = addressKey(match[1]!);
      if (!key) return reply(res, 400, { error: 'name an address or its SHA-256 address hash' });
      const lifted = await options.lift(key);
      options.log.info({ address_hash: key, lifted }, 'operator lifted a suppression');
      return lifted
        ? reply(res, 200, { address_hash: key, lifted: true })
        : reply(res, 404, { address_hash: key, lifted: false, error: 'not suppressed' });
    }
    reply(res, 404, { error: 'GET /suppressions or DELETE /suppressions/<address or hash>' });
  }

  return listenHttp(
    options.host,
    options.port,
    handle,
    (error, res) => {
      options.log.error({ err: error }, 'suppression admin request failed');
      // The error is in the log; its text (SQL, driver details) is not for the client.
      reply(res, 503, { error: 'the suppression store is unavailable, try again' });
    },
    options.limits,
  );
}
