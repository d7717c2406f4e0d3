/**
 * An FCM HTTP v1 emulator for tests: HTTPS on loopback with a certificate for fcm.googleapis.com
 * signed by a CA made at start, so firebase-admin reaches it through its normal request path (an
 * https agent that dials here and trusts `ca`, see services/push/fcm-client.ts). It serves
 * POST /v1/projects/{project}/messages:send, records every request, and answers per token as told:
 * success, UNREGISTERED (404), INVALID_ARGUMENT (400), 429 with Retry-After, or 503.
 * test/fcm-emulator/main.ts runs it as a process of its own.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FCM_HOST } from '../../services/push/fcm-client.ts';

/** What the emulator answers for a token; a failure with `times` answers that often, then success. */
export type TokenBehaviour =
  | { answer: 'success' }
  | { answer: 'unregistered' }
  | { answer: 'invalid-argument' }
  | { answer: 'quota-exceeded'; retryAfterSeconds: number; times?: number }
  | { answer: 'unavailable'; times?: number };

export interface ReceivedRequest {
  project: string;
  token: string | undefined;
  message: Record<string, unknown>;
  status: number;
  /** When it arrived (ms since the epoch). */
  at: number;
  authorization: string | undefined;
  /** Which TLS connection carried it: how many connections the client opened. */
  connection: number;
}

export interface FcmEmulator {
  host: string;
  port: number;
  /** PEM of the CA that signed the server certificate. */
  ca: string;
  /** A file holding `ca`, for a process started with FCM_EMULATOR_CA. */
  caFile: string;
  requests(): readonly ReceivedRequest[];
  /** Requests answered with success, per token. */
  delivered(token: string): ReceivedRequest[];
  behave(token: string, behaviour: TokenBehaviour): void;
  reset(): void;
  close(): Promise<void>;
}

interface Certificates {
  ca: string;
  key: string;
  cert: string;
  caFile: string;
  dir: string;
}

/** A throwaway CA and a server certificate for FCM's host name and loopback, through the openssl CLI. */
function makeCertificates(): Certificates {
  const dir = mkdtempSync(join(tmpdir(), 'fcm-emulator-'));
  const at = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=Tidings FCM emulator CA',
    '-keyout',
    at('ca.key'),
    '-out',
    at('ca.pem'),
  );
  openssl(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-subj',
    `/CN=${FCM_HOST}`,
    '-keyout',
    at('server.key'),
    '-out',
    at('server.csr'),
  );
  writeFileSync(at('server.ext'), `subjectAltName=DNS:${FCM_HOST},DNS:localhost,IP:127.0.0.1\n`);
  openssl(
    'x509',
    '-req',
    '-in',
    at('server.csr'),
    '-CA',
    at('ca.pem'),
    '-CAkey',
    at('ca.key'),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    at('server.ext'),
    '-out',
    at('server.pem'),
  );
  return {
    ca: readFileSync(at('ca.pem'), 'utf8'),
    key: readFileSync(at('server.key'), 'utf8'),
    cert: readFileSync(at('server.pem'), 'utf8'),
    caFile: at('ca.pem'),
    dir,
  };
}

const CONTROL_PREFIX = '/_emulator/';
const SEND_PATH = /^\/v1\/projects\/([^/]+)\/messages:send$/;
const FCM_ERROR_TYPE = 'type.googleapis.com/google.firebase.fcm.v1.FcmError';

interface Answer {
  status: number;
  headers?: Record<string, string>;
  body: unknown;
}

function fcmError(status: number, rpcStatus: string, errorCode: string, message: string): Answer {
  return {
    status,
    body: {
      error: { code: status, message, status: rpcStatus, details: [{ '@type': FCM_ERROR_TYPE, errorCode }] },
    },
  };
}

export async function startFcmEmulator(options: { port?: number } = {}): Promise<FcmEmulator> {
  const certs = makeCertificates();
  const behaviours = new Map<string, TokenBehaviour>();
  const failuresAnswered = new Map<string, number>();
  const received: ReceivedRequest[] = [];
  let connections = 0;

  function answerFor(project: string, token: string | undefined): Answer {
    const behaviour = (token && behaviours.get(token)) || { answer: 'success' };
    const success: Answer = { status: 200, body: { name: `projects/${project}/messages/${randomUUID()}` } };
    switch (behaviour.answer) {
      case 'success':
        return success;
      case 'unregistered':
        return fcmError(404, 'NOT_FOUND', 'UNREGISTERED', 'Requested entity was not found.');
      case 'invalid-argument':
        return fcmError(400, 'INVALID_ARGUMENT', 'INVALID_ARGUMENT', 'The registration token is not valid.');
      case 'quota-exceeded':
      case 'unavailable': {
        const answered = failuresAnswered.get(token ?? '') ?? 0;
        if (behaviour.times !== undefined && answered >= behaviour.times) return success;
        failuresAnswered.set(token ?? '', answered + 1);
        if (behaviour.answer === 'unavailable') {
          return fcmError(503, 'UNAVAILABLE', 'UNAVAILABLE', 'The service is currently unavailable.');
        }
        return {
          ...fcmError(429, 'RESOURCE_EXHAUSTED', 'QUOTA_EXCEEDED', 'Sending rate exceeded.'),
          headers: { 'retry-after': String(behaviour.retryAfterSeconds) },
        };
      }
    }
  }

  const server = createServer({ key: certs.key, cert: certs.cert }, (req, res) => {
    const connection = (req.socket as { emulatorId?: number }).emulatorId ?? 0;
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.url?.startsWith(CONTROL_PREFIX)) {
        control(req.method ?? 'GET', req.url.slice(CONTROL_PREFIX.length), Buffer.concat(chunks), res);
        return;
      }
      const project = SEND_PATH.exec(req.url ?? '')?.[1];
      if (req.method !== 'POST' || project === undefined) {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":404}}');
        return;
      }
      let message: Record<string, unknown> = {};
      try {
        message =
          (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { message?: Record<string, unknown> })
            .message ?? {};
      } catch {
        const answer = fcmError(400, 'INVALID_ARGUMENT', 'INVALID_ARGUMENT', 'Invalid JSON payload.');
        res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));
        return;
      }
      const token = typeof message.token === 'string' ? message.token : undefined;
      const answer = answerFor(project, token);
      received.push({
        project,
        token,
        message,
        status: answer.status,
        at: Date.now(),
        authorization: req.headers.authorization,
        connection,
      });
      res
        .writeHead(answer.status, { 'content-type': 'application/json; charset=UTF-8', ...answer.headers })
        .end(JSON.stringify(answer.body));
    });
  });
  /**
   * For a process that does not hold the emulator (make dev, a benchmark): GET /_emulator/requests,
   * PUT /_emulator/tokens/{token} with a TokenBehaviour, POST /_emulator/reset.
   */
  function control(method: string, path: string, body: Buffer, res: ServerResponse) {
    const json = (status: number, value: unknown) =>
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value));
    const token = /^tokens\/(.+)$/.exec(path)?.[1];
    if (method === 'GET' && path === 'requests') return json(200, received);
    if (method === 'POST' && path === 'reset') {
      reset();
      return json(200, {});
    }
    if (method === 'PUT' && token !== undefined) {
      try {
        behaviours.set(decodeURIComponent(token), JSON.parse(body.toString('utf8')) as TokenBehaviour);
        failuresAnswered.delete(decodeURIComponent(token));
        return json(200, {});
      } catch (error) {
        return json(400, { error: (error as Error).message });
      }
    }
    return json(404, { error: `no control endpoint ${method} ${CONTROL_PREFIX}${path}` });
  }

  function reset() {
    received.length = 0;
    behaviours.clear();
    failuresAnswered.clear();
  }

  server.on('secureConnection', (socket) => {
    (socket as { emulatorId?: number }).emulatorId = ++connections;
  });
  server.listen(options.port ?? 0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });

  return {
    host: '127.0.0.1',
    port: (server.address() as AddressInfo).port,
    ca: certs.ca,
    caFile: certs.caFile,
    requests: () => received,
    delivered: (token) => received.filter((r) => r.token === token && r.status === 200),
    behave(token, behaviour) {
      behaviours.set(token, behaviour);
      failuresAnswered.delete(token);
    },
    reset,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(certs.dir, { recursive: true, force: true });
    },
  };
}
