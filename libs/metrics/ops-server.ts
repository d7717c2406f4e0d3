/**
 * The operator-facing HTTP endpoint of every service, on its own port so probes and scrapes never
 * queue behind application traffic:
 *   /metrics  Prometheus text format
 *   /healthz  the process is alive (event loop answering): always 200
 *   /readyz   200 or 503 with every readiness check
 *   /_info    what is running where: name, version, dc, node, uptime, plus caller extras
 * GET and HEAD only. Plain node:http (libs/http/server.ts: timeouts and a connection limit): four
 * routes do not need a framework.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { createLimitedServer, type HttpLimits } from '../http/server.ts';

export interface ReadinessCheck {
  ok: boolean;
  detail?: string;
}

export interface Readiness {
  ready: boolean;
  checks: Record<string, ReadinessCheck>;
}

export interface OpsInfo {
  name: string;
  version: string;
  dc: string;
  /** Anything else worth showing, e.g. `config: describeConfig(spec, cfg)`. */
  [extra: string]: unknown;
}

export interface OpsServerOptions {
  /** 0 picks a free port (tests); the chosen one is returned. */
  port: number;
  /** Interface to bind; all interfaces by default. */
  host?: string;
  registry: Registry;
  info: OpsInfo;
  /** Without it the process is ready as soon as the server listens. */
  readiness?: () => Promise<Readiness>;
  log: Logger;
  /** Timeouts and the connection limit (libs/http/server.ts defaults when absent). */
  limits?: HttpLimits;
}

export interface OpsServer {
  port: number;
  close(): Promise<void>;
}

const STARTED_AT = new Date(performance.timeOrigin).toISOString();

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  // Node drops the body of a HEAD response and keeps its headers.
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, 'application/json; charset=utf-8', `${JSON.stringify(value)}\n`);
}

async function checkReadiness(readiness: () => Promise<Readiness>): Promise<Readiness> {
  try {
    return await readiness();
  } catch (err) {
    return { ready: false, checks: { readiness: { ok: false, detail: (err as Error).message } } };
  }
}

export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const { registry, readiness, log } = options;
  const { name, version, dc, ...extra } = options.info;

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      sendJson(res, 405, { error: 'method not allowed' });
      return;
    }
    const path = new URL(req.url ?? '/', 'http://ops').pathname;
    switch (path) {
      case '/metrics':
        send(res, 200, registry.contentType, await registry.metrics());
        return;
      case '/healthz':
        sendJson(res, 200, { status: 'ok' });
        return;
      case '/readyz': {
        const result = readiness ? await checkReadiness(readiness) : { ready: true, checks: {} };
        sendJson(res, result.ready ? 200 : 503, result);
        return;
      }
      case '/_info':
        sendJson(res, 200, {
          name,
          version,
          dc,
          node: process.version,
          started_at: STARTED_AT,
          uptime_seconds: Math.round(process.uptime()),
          ...extra,
        });
        return;
      default:
        sendJson(res, 404, { error: 'not found', endpoints: ['/metrics', '/healthz', '/readyz', '/_info'] });
    }
  }

  const server = createLimitedServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      log.error({ err, path: req.url }, 'ops server request failed');
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error, see the service log' });
      else res.destroy();
    });
  }, options.limits);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: Error) => {
    throw new Error(`ops server cannot listen on ${options.host ?? '*'}:${options.port}: ${err.message}`, {
      cause: err,
    });
  });
  const { port } = server.address() as AddressInfo;
  log.info({ port }, 'ops server listening');

  return {
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // Scrapers and probes keep connections alive; do not wait for them to hang up.
        server.closeIdleConnections();
      }),
  };
}
