/**
 * The HTTP ports against clients that hold them: a request whose headers trickle in, a body far over
 * the limit, more connections than the port takes, and the operator port's query strings that once
 * reached Postgres (`limit=-5`) or answered with the error's text (a bad `%` escape). Each client
 * here is a raw socket, so nothing on the client side times out or gives up first.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type pg from 'pg';
import pino from 'pino';
import { Registry } from 'prom-client';
import { type OpsServer, startOpsServer } from '../../libs/metrics/ops-server.ts';
import { createBounceMetrics } from '../../services/bounce/bounce-metrics.ts';
import type { Listening } from '../../services/bounce/http-listener.ts';
import { startSuppressionAdmin } from '../../services/bounce/suppression-admin.ts';
import { startWebhookServer } from '../../services/bounce/webhook-server.ts';

const log = pino({ level: 'silent' });
const LIMITS = { headersTimeoutMs: 300, requestTimeoutMs: 600, maxConnections: 3 };

/** A raw connection and everything the server sent on it until it closed. */
function client(port: number): { socket: Socket; received: () => string; closed: Promise<void> } {
  const socket = connect(port, '127.0.0.1');
  let text = '';
  socket.on('data', (chunk) => {
    text += chunk.toString('latin1');
  });
  socket.on('error', () => undefined);
  const closed = once(socket, 'close').then(() => undefined);
  return { socket, received: () => text, closed };
}

/** An ops server of its own for a test that fills its connections, so the others never meet them. */
function startOps(): Promise<OpsServer> {
  return startOpsServer({
    port: 0,
    host: '127.0.0.1',
    registry: new Registry(),
    info: { name: 'test', version: '0', dc: 'x' },
    log,
    limits: LIMITS,
  });
}

let ops: OpsServer;
let webhook: Listening;
before(async () => {
  ops = await startOps();
  webhook = await startWebhookServer({
    host: '127.0.0.1',
    port: 0,
    secrets: ['w'.repeat(32)],
    toleranceMs: 300_000,
    maxBodyBytes: 1024,
    dc: 'x',
    sender: { send: async () => undefined, sendRaw: async () => undefined },
    metrics: createBounceMetrics(new Registry()),
    log,
    now: Date.now,
    limits: LIMITS,
  });
});
after(async () => {
  await ops.close();
  await webhook.close();
});

describe('slow and oversize requests', { timeout: 20_000 }, () => {
  test('a request whose headers never end is answered 408 and disconnected', async () => {
    const { socket, received, closed } = client(ops.port);
    socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    await closed;
    assert.match(received(), /^HTTP\/1\.1 408 /);
  });

  test('a body past the limit is refused from its Content-Length, without being read', async () => {
    const { socket, received, closed } = client(webhook.port);
    socket.write('POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n{"a":');
    await closed;
    assert.match(received(), /^HTTP\/1\.1 413 /);
  });

  test('a chunked body that grows past the limit is cut off with 413', async () => {
    const { socket, received, closed } = client(webhook.port);
    socket.write('POST /webhook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
    const chunk = 'x'.repeat(800);
    socket.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
    socket.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
    await closed;
    assert.match(received(), /^HTTP\/1\.1 413 /);
  });

  test('connections past the limit are dropped as they arrive', async () => {
    const full = await startOps();
    const held = [client(full.port), client(full.port), client(full.port)];
    try {
      for (const c of held) await once(c.socket, 'connect');
      const extra = client(full.port);
      await extra.closed;
      assert.equal(extra.received(), '', 'dropped without an answer');
    } finally {
      for (const c of held) c.socket.destroy();
      await full.close();
    }
  });
});

describe('the operator port reads its query strictly', () => {
  const TOKEN = 't'.repeat(32);
  let admin: Listening;
  let failing = false;
  const limits: unknown[] = [];
  const db = {
    async query(_sql: string, values: unknown[]) {
      if (failing) throw new Error('relation "secret_table" does not exist');
      limits.push(values[0]);
      return { rows: [] };
    },
  } as unknown as pg.Pool;
  before(async () => {
    admin = await startSuppressionAdmin({
      host: '127.0.0.1',
      port: 0,
      token: TOKEN,
      db,
      lift: async () => false,
      log,
    });
  });
  after(() => admin.close());
  const get = (path: string, method = 'GET') =>
    fetch(`http://127.0.0.1:${admin.port}${path}`, { method, headers: { authorization: `Bearer ${TOKEN}` } });

  test('a negative, fractional or huge limit is a 400 and never reaches the database', async () => {
    for (const limit of ['-5', '1.5', '1e3', '100000', '0', 'abc']) {
      const res = await get(`/suppressions?limit=${limit}`);
      assert.equal(res.status, 400, `limit=${limit}`);
    }
    assert.deepEqual(limits, []);
    assert.equal((await get('/suppressions?limit=50')).status, 200);
    assert.deepEqual(limits, [50]);
  });

  test('a bad % escape is a 400, and a failure answers without its error text', async () => {
    const res = await get('/suppressions/%E0%A4%A', 'DELETE');
    assert.equal(res.status, 400);
    failing = true;
    const failed = await get('/suppressions');
    failing = false;
    assert.equal(failed.status, 503);
    assert.doesNotMatch(await failed.text(), /secret_table|relation/);
  });
});
