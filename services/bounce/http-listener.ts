/** The HTTP mechanics bounce's two HTTP ports share: listening with limits, JSON replies. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLimitedServer, type HttpLimits } from '../../libs/http/server.ts';

export interface Listening {
  readonly port: number;
  close(): Promise<void>;
}

/** Serves `handle`; a handler that throws gets `onError`'s answer (unless it already replied). */
export async function listenHttp(
  host: string,
  port: number,
  handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
  onError: (error: unknown, res: ServerResponse) => void,
  limits?: HttpLimits,
): Promise<Listening> {
  const server = createLimitedServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) onError(error, res);
      else res.destroy();
    });
  }, limits);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}

export function reply(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
