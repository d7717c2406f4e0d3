import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { type OpsServer, type Readiness, startOpsServer } from '../../libs/metrics/ops-server.ts';
import { counter, createRegistry } from '../../libs/metrics/registry.ts';

const log = pino({ level: 'silent' });
const registry = createRegistry({ defaultLabels: { service: 'router' } });
const routed = counter(registry, {
  name: 'tidings_routed_total',
  help: 'routed',
  labelNames: ['channel'] as const,
});

let readiness: Readiness = { ready: true, checks: {} };
let server: OpsServer;
let base: string;

before(async () => {
  server = await startOpsServer({
    port: 0,
    host: '127.0.0.1',
    registry,
    info: {
      name: 'router',
      version: '1.2.3',
      dc: 'codfw',
      config: { LOG_LEVEL: 'info', DATABASE_URL: 'postgres://u:***@db/x' },
    },
    readiness: async () => readiness,
    log,
  });
  base = `http://127.0.0.1:${server.port}`;
});

after(() => server.close());

test('/metrics serves the registry in Prometheus text format with default metrics', async () => {
  routed.inc({ channel: 'email' }, 2);
  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const body = await res.text();
  assert.match(body, /^# TYPE tidings_routed_total counter$/m);
  assert.match(body, /^tidings_routed_total\{channel="email",service="router"\} 2$/m);
  assert.match(body, /^process_cpu_user_seconds_total\{service="router"\} /m);
});

test('/healthz says the process is alive', async () => {
  const res = await fetch(`${base}/healthz`);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { status: 'ok' });
});

test('/readyz answers 200 when ready and 503 with the failing checks when not', async () => {
  readiness = { ready: true, checks: { kafka: { ok: true }, db: { ok: true } } };
  let res = await fetch(`${base}/readyz`);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), readiness);

  readiness = {
    ready: false,
    checks: { kafka: { ok: true }, db: { ok: false, detail: 'connection refused' } },
  };
  res = await fetch(`${base}/readyz`);
  assert.equal(res.status, 503);
  assert.deepEqual(await res.json(), readiness);
});

test('/readyz is 503 when the readiness function itself throws', async () => {
  const failing = await startOpsServer({
    port: 0,
    host: '127.0.0.1',
    registry,
    info: { name: 'x', version: '0', dc: 'eqiad' },
    readiness: async () => {
      throw new Error('consumer not started');
    },
    log,
  });
  try {
    const res = await fetch(`http://127.0.0.1:${failing.port}/readyz`);
    assert.equal(res.status, 503);
    assert.deepEqual(await res.json(), {
      ready: false,
      checks: { readiness: { ok: false, detail: 'consumer not started' } },
    });
  } finally {
    await failing.close();
  }
});

test('/_info tells what runs where, with the extras', async () => {
  const res = await fetch(`${base}/_info?pretty`);
  assert.equal(res.status, 200);
  const info = (await res.json()) as Record<string, unknown>;
  assert.equal(info.name, 'router');
  assert.equal(info.version, '1.2.3');
  assert.equal(info.dc, 'codfw');
  assert.equal(info.node, process.version);
  assert.equal(typeof info.uptime_seconds, 'number');
  assert.ok(Date.parse(String(info.started_at)) <= Date.now());
  assert.deepEqual(info.config, { LOG_LEVEL: 'info', DATABASE_URL: 'postgres://u:***@db/x' });
});

test('HEAD gets the headers without a body', async () => {
  const res = await fetch(`${base}/healthz`, { method: 'HEAD' });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-length'), String('{"status":"ok"}\n'.length));
  assert.equal(await res.text(), '');
});

test('unknown paths are 404 and other methods 405', async () => {
  const missing = await fetch(`${base}/nope`);
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
  const post = await fetch(`${base}/metrics`, { method: 'POST' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, HEAD');
  await post.body?.cancel();
});

test('a taken port is reported with the address', async () => {
  await assert.rejects(
    startOpsServer({
      port: server.port,
      host: '127.0.0.1',
      registry,
      info: { name: 'x', version: '0', dc: 'eqiad' },
      log,
    }),
    new RegExp(`ops server cannot listen on 127\\.0\\.0\\.1:${server.port}: .*EADDRINUSE`),
  );
});
