/**
 * The inbox's public HTTP API (docs/inbox-api.md) and its page, on their own port.
 *   GET  /v1/notifications   entries newest first (bundles count once), cursor pagination, filters
 *   GET  /v1/counts          unread and unseen from the counters: one primary-key read
 *   POST /v1/read | /v1/unread | /v1/archive | /v1/unarchive   {"ids": [...]} and, for read, {"up_to": id}
 *   POST /v1/seen            moves the seen watermark to now
 *   GET  /v1/stream          Server-Sent Events; `Last-Event-ID` resumes after the last notification seen
 *   GET  /  and /inbox.js    the bell page
 * Every /v1 request needs a valid inbox token (Authorization: Bearer, or `access_token` in the query
 * for EventSource, which cannot set headers); without one, 401. The token's subject is the person:
 * nothing in a request body names whose inbox it is. Bodies, ids and connections are bounded, and
 * CORS answers only the configured origins.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { createLimitedServer, readBody } from '../../libs/http/server.ts';
import type { InboxAction } from '../../libs/schemas/types.generated.ts';
import type { InboxMetrics } from './inbox-metrics.ts';
import type { LiveHub } from './live.ts';
import type { Counts, Entry, ListQuery, LiveNotification, Section } from './store.ts';
import { type TokenKeyRing, verifyInboxToken } from './token.ts';

export interface InboxReads {
  counts(userId: string): Promise<Counts>;
  list(userId: string, query: ListQuery): Promise<{ entries: Entry[]; more: boolean }>;
  after(userId: string, seq: number, limit: number): Promise<LiveNotification[]>;
}

export interface ChangeRequest {
  userId: string;
  action: InboxAction;
  ids: readonly string[];
  /** For read: also everything up to this notification's event time. */
  upToId: string | null;
}

export interface ApiServerOptions {
  port: number;
  host?: string;
  keyRing: TokenKeyRing;
  maxTokenTtlMs: number;
  corsOrigins: readonly string[];
  maxStreams: number;
  reads: InboxReads;
  /** Publishes the change to notify.inbox-state (acks=all) and applies it here. */
  change(request: ChangeRequest): Promise<void>;
  live: LiveHub;
  metrics: InboxMetrics;
  log: Logger;
  keepAliveMs?: number;
}

export interface ApiServer {
  port: number;
  streams(): number;
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 16 * 1024;
const MAX_IDS = 500;
const MAX_ID_CHARS = 200;
const MAX_LIMIT = 100;
const PAGE_DIR = join(import.meta.dirname, 'page');
const STATIC: Record<string, { type: string; body: string }> = {
  '/': { type: 'text/html; charset=utf-8', body: readFileSync(join(PAGE_DIR, 'index.html'), 'utf8') },
  '/inbox.js': {
    type: 'text/javascript; charset=utf-8',
    body: readFileSync(join(PAGE_DIR, 'inbox.js'), 'utf8'),
  },
};
const ACTIONS: Record<string, InboxAction> = {
  '/v1/read': 'read',
  '/v1/unread': 'unread',
  '/v1/archive': 'archive',
  '/v1/unarchive': 'unarchive',
  '/v1/seen': 'seen',
};

class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = `${JSON.stringify(value)}\n`;
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}

async function readJson(req: IncomingMessage, res: ServerResponse): Promise<Record<string, unknown>> {
  if (!/^application\/json\b/.test(req.headers['content-type'] ?? '')) {
    throw new HttpError(415, 'send the body as application/json');
  }
  // An oversize body is refused unread: readBody has answered 413 and drops the connection.
  const body = await readBody(req, res, MAX_BODY_BYTES);
  if (body === null) throw new HttpError(413, `body larger than ${MAX_BODY_BYTES} bytes`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8') || '{}');
  } catch {
    throw new HttpError(400, 'body is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new HttpError(400, 'body must be a JSON object');
  }
  return parsed as Record<string, unknown>;
}

function idList(value: unknown): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.length > MAX_IDS)
    throw new HttpError(400, `ids: at most ${MAX_IDS} ids`);
  for (const id of value) {
    if (typeof id !== 'string' || id === '' || id.length > MAX_ID_CHARS) {
      throw new HttpError(400, 'ids: non-empty strings of at most 200 characters');
    }
  }
  return value as string[];
}

export function encodeCursor(entry: Pick<Entry, 'latest' | 'entryId'>): string {
  return Buffer.from(JSON.stringify([entry.latest, entry.entryId])).toString('base64url');
}

function decodeCursor(cursor: string | null): ListQuery['before'] {
  if (cursor === null) return null;
  try {
    const [latest, entryId] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown[];
    if (Number.isSafeInteger(latest) && typeof entryId === 'string' && entryId.length <= 300) {
      return { latest: latest as number, entryId };
    }
  } catch {
    // fall through
  }
  throw new HttpError(400, 'cursor: pass next_cursor of the previous page unchanged');
}

function listQuery(params: URLSearchParams): ListQuery {
  const limit = Number(params.get('limit') ?? 25);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
    throw new HttpError(400, `limit: an integer 1-${MAX_LIMIT}`);
  }
  const section = params.get('section');
  if (section !== null && section !== 'alert' && section !== 'notice') {
    throw new HttpError(400, 'section: alert or notice');
  }
  const category = params.get('category');
  if (category !== null && (category === '' || category.length > 100)) throw new HttpError(400, 'category');
  return {
    limit,
    unreadOnly: params.get('unread') === 'true',
    category,
    section: section as Section | null,
    before: decodeCursor(params.get('cursor')),
  };
}

export function entryJson(e: Entry) {
  return {
    id: e.entryId,
    kind: e.kind,
    count: e.count,
    unread: e.unread,
    latest: new Date(e.latest).toISOString(),
    category: e.notification.category,
    title: e.notification.title,
    url: e.notification.url,
    actors: e.actors,
    notification_ids: e.notificationIds,
  };
}

function countsJson(c: Counts) {
  return { unread: c.unread, unseen: c.unseen, seen_until: new Date(c.seenUntil).toISOString() };
}

export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const { keyRing, reads, live, metrics, log, keepAliveMs = 15_000 } = options;
  const streams = new Set<ServerResponse>();

  function cors(req: IncomingMessage, res: ServerResponse): void {
    const origin = req.headers.origin;
    if (origin && options.corsOrigins.includes(origin)) {
      res.setHeader('access-control-allow-origin', origin);
      res.setHeader('vary', 'Origin');
      res.setHeader('access-control-allow-headers', 'Authorization, Content-Type, Last-Event-ID');
      res.setHeader('access-control-allow-methods', 'GET, POST');
      res.setHeader('access-control-max-age', '600');
    }
  }

  async function authenticate(req: IncomingMessage, params: URLSearchParams): Promise<string> {
    const header = req.headers.authorization;
    const token = header?.startsWith('Bearer ')
      ? header.slice(7).trim()
      : (params.get('access_token') ?? undefined);
    const check = await verifyInboxToken(keyRing, token, { maxTtlMs: options.maxTokenTtlMs });
    if (!check.ok) {
      metrics.refused(check.reason);
      throw new HttpError(401, `a valid inbox token is required (${check.reason})`);
    }
    return check.userId;
  }

  async function stream(req: IncomingMessage, res: ServerResponse, userId: string): Promise<void> {
    if (streams.size >= options.maxStreams) throw new HttpError(503, 'too many live streams; retry later');
    const counts = await reads.counts(userId);
    const lastEventId = req.headers['last-event-id'];
    let last =
      typeof lastEventId === 'string' && /^\d{1,15}$/.test(lastEventId) ? Number(lastEventId) : counts.seq;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 1000\n\n');
    streams.add(res);
    metrics.streams(streams.size);
    let pumping = false;
    let again = false;
    let open = true;
    // One pump at a time per stream: a wake during a pump runs it once more afterwards.
    const pump = async (): Promise<void> => {
      if (pumping) {
        again = true;
        return;
      }
      pumping = true;
      try {
        do {
          again = false;
          for (;;) {
            const batch = await reads.after(userId, last, 100);
            for (const n of batch) {
              res.write(
                `id: ${n.seq}\nevent: notification\ndata: ${JSON.stringify({
                  notification_id: n.notification.notification_id,
                  entry_id: n.entryId,
                  category: n.notification.category,
                  title: n.notification.title,
                  url: n.notification.url,
                  at: new Date(n.eventMs).toISOString(),
                })}\n\n`,
              );
              last = n.seq;
            }
            if (batch.length < 100) break;
          }
          if (!open) return;
          res.write(`event: counts\ndata: ${JSON.stringify(countsJson(await reads.counts(userId)))}\n\n`);
        } while (again && open);
      } catch (err) {
        log.warn({ err }, 'live stream update failed; closing the stream');
        res.destroy();
      } finally {
        pumping = false;
      }
    };
    const unsubscribe = live.subscribe(userId, () => void pump());
    const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), keepAliveMs);
    res.on('close', () => {
      open = false;
      clearInterval(keepAlive);
      unsubscribe();
      streams.delete(res);
      metrics.streams(streams.size);
    });
    await pump();
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<string> {
    const url = new URL(req.url ?? '/', 'http://inbox');
    const path = url.pathname;
    cors(req, res);
    const page = STATIC[path];
    if (page && (req.method === 'GET' || req.method === 'HEAD')) {
      res.writeHead(200, {
        'content-type': page.type,
        'content-length': Buffer.byteLength(page.body),
        'cache-control': 'no-cache',
        'content-security-policy':
          "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
        'referrer-policy': 'no-referrer',
        'x-content-type-options': 'nosniff',
      });
      res.end(page.body);
      return 'page';
    }
    if (!path.startsWith('/v1/')) throw new HttpError(404, 'not found; the API is under /v1/');
    if (req.method === 'OPTIONS') {
      res.writeHead(204);
      res.end();
      return 'preflight';
    }
    const userId = await authenticate(req, url.searchParams);
    if (req.method === 'GET' && path === '/v1/notifications') {
      const query = listQuery(url.searchParams);
      const { entries, more } = await reads.list(userId, query);
      const lastEntry = entries.at(-1);
      sendJson(res, 200, {
        entries: entries.map(entryJson),
        next_cursor: more && lastEntry ? encodeCursor(lastEntry) : null,
      });
      return 'list';
    }
    if (req.method === 'GET' && path === '/v1/counts') {
      sendJson(res, 200, countsJson(await reads.counts(userId)));
      return 'counts';
    }
    if (req.method === 'GET' && path === '/v1/stream') {
      await stream(req, res, userId);
      return 'stream';
    }
    const action = ACTIONS[path];
    if (req.method === 'POST' && action) {
      const body = await readJson(req, res);
      const ids = idList(body.ids);
      const upToId = body.up_to === undefined ? null : idList([body.up_to])[0]!;
      if (upToId !== null && action !== 'read') throw new HttpError(400, 'up_to: only for /v1/read');
      if (action !== 'seen' && ids.length === 0 && upToId === null) {
        throw new HttpError(400, action === 'read' ? 'give ids or up_to' : 'give ids');
      }
      await options.change({ userId, action, ids, upToId }).catch((err: unknown) => {
        log.warn({ err }, 'publishing an inbox change failed');
        throw new HttpError(503, 'the change could not be recorded; retry');
      });
      sendJson(res, 200, countsJson(await reads.counts(userId)));
      return action;
    }
    throw new HttpError(404, `no ${req.method} ${path}`);
  }

  // Live streams are long responses, not long requests: the request timeouts do not end them.
  const server = createLimitedServer((req, res) => {
    const started = performance.now();
    route(req, res)
      .then((name) => metrics.request(name, res.statusCode, performance.now() - started))
      .catch((err: unknown) => {
        const status = err instanceof HttpError ? err.status : 500;
        if (status === 500) log.error({ err, path: req.url?.split('?')[0] }, 'inbox request failed');
        metrics.request('error', status, performance.now() - started);
        if (!res.headersSent) sendJson(res, status, { error: (err as Error).message });
        else res.destroy();
      });
  });
  server.maxConnections = options.maxStreams + 1_000;
  server.keepAliveTimeout = 5_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: Error) => {
    throw new Error(`inbox API cannot listen on ${options.host ?? '*'}:${options.port}: ${err.message}`, {
      cause: err,
    });
  });

  return {
    port: (server.address() as AddressInfo).port,
    streams: () => streams.size,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // Live streams never end by themselves: end them so clients reconnect elsewhere.
        for (const res of streams) res.end();
        server.closeIdleConnections();
      }),
  };
}
