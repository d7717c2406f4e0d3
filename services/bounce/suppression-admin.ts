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
}

/** A path segment naming an address (hashed here) or an address hash. */
export function addressKey(segment: string): string | null {
  const value = decodeURIComponent(segment).trim();
  if (HASH.test(value)) return value;
  return value.includes('@') ? addressHash(value) : null;
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
      const limit = Math.min(Number(url.searchParams.get('limit') ?? 100) || 100, 1000);
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

  return listenHttp(options.host, options.port, handle, (error, res) => {
    options.log.error({ err: error }, 'suppression admin request failed');
    reply(res, 503, { error: (error as Error).message });
  });
}
