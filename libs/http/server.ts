/**
 * node:http servers that hold against slow and oversize clients. Node's defaults give a client
 * 60 s to send its headers, 300 s for the whole request and any number of connections, and a
 * handler that reads a body "up to a limit" by draining the rest lets a client stream gigabytes.
 * Every Tidings HTTP server is made here instead:
 *   headersTimeoutMs   a client still sending headers after this gets 408 and is disconnected;
 *   requestTimeoutMs   the same for the whole request, body included;
 *   maxConnections     sockets beyond this are dropped as they arrive;
 * and `readBody` refuses a body past its limit without reading it (413, then the socket is
 * destroyed), whether the Content-Length announces it or the stream only grows past it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { duration, int } from '../config/vars.ts';

export interface HttpLimits {
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly maxConnections: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  maxConnections: 512,
};

/** The limits as environment variables, for a service to spread into its spec. */
export const httpLimitsSpec = {
  HTTP_HEADERS_TIMEOUT: duration({
    default: DEFAULT_HTTP_LIMITS.headersTimeoutMs,
    min: 100,
    help: 'a client of an HTTP port still sending its request headers after this is answered 408 and disconnected',
  }),
  HTTP_REQUEST_TIMEOUT: duration({
    default: DEFAULT_HTTP_LIMITS.requestTimeoutMs,
    min: 100,
    help: 'a client of an HTTP port still sending its request (body included) after this is disconnected',
  }),
  HTTP_MAX_CONNECTIONS: int({
    default: DEFAULT_HTTP_LIMITS.maxConnections,
    min: 1,
    help: 'open connections per HTTP port; more are dropped as they arrive',
  }),
};

export const httpLimitsOf = (config: {
  readonly HTTP_HEADERS_TIMEOUT: number;
  readonly HTTP_REQUEST_TIMEOUT: number;
  readonly HTTP_MAX_CONNECTIONS: number;
}): HttpLimits => ({
  headersTimeoutMs: config.HTTP_HEADERS_TIMEOUT,
  requestTimeoutMs: config.HTTP_REQUEST_TIMEOUT,
  maxConnections: config.HTTP_MAX_CONNECTIONS,
});

export function createLimitedServer(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  limits: HttpLimits = DEFAULT_HTTP_LIMITS,
): Server {
  const requestTimeout = Math.max(limits.requestTimeoutMs, limits.headersTimeoutMs);
  const server = createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout,
      // Node checks the two timeouts on this interval (30 s by default), so it bounds how late they fire.
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4))),
    },
    handler,
  );
  server.maxConnections = limits.maxConnections;
  return server;
}

/**
 * The body, or null once it is known to pass `max` bytes: then 413 has been answered and the socket
 * is destroyed once the answer is out, so the rest is never read.
 */
export async function readBody(
  req: IncomingMessage,
  res: ServerResponse,
  max: number,
): Promise<Buffer | null> {
  // Taken now: once the answer is out, Node detaches the socket from the request.
  const { socket } = req;
  const refuse = () => {
    if (!res.headersSent) {
      res.writeHead(413, { 'content-type': 'application/json', connection: 'close' });
      res.end(JSON.stringify({ error: `body larger than ${max} bytes` }), () => socket.destroy());
    } else socket.destroy();
    return null;
  };
  if (Number(req.headers['content-length'] ?? 0) > max) return refuse();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) return refuse();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
