import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { createShutdown } from '../../libs/lifecycle/shutdown.ts';

interface Line {
  level: number;
  msg: string;
  err?: { message: string };
  [field: string]: unknown;
}

/** A shutdown wired to a fake process, a recording exit and a captured log. */
function harness(timeoutMs = 5000) {
  const lines: Line[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as Line) });
  const proc = new EventEmitter();
  const exits: number[] = [];
  const firstExit = Promise.withResolvers<number>();
  const exit = (code: number) => {
    exits.push(code);
    firstExit.resolve(code);
  };
  const shutdown = createShutdown({ log, timeoutMs, exit, process: proc });
  return { shutdown, proc, exits, lines, exited: () => firstExit.promise };
}

test('runs steps in reverse registration order, each awaited, and exits 0', async () => {
  const { shutdown, proc, exits, lines, exited } = harness();
  const order: string[] = [];
  const step = (name: string, ms: number) => async () => {
    order.push(`${name} start`);
    await sleep(ms);
    order.push(`${name} end`);
  };
  shutdown.onShutdown('db pool', step('db pool', 1));
  shutdown.onShutdown('producer', step('producer', 5));
  shutdown.onShutdown('consumer', step('consumer', 10));

  proc.emit('SIGTERM');
  assert.equal(await exited(), 0);
  assert.deepEqual(order, [
    'consumer start',
    'consumer end',
    'producer start',
    'producer end',
    'db pool start',
    'db pool end',
  ]);
  assert.deepEqual(exits, [0]);
  const done = lines.filter((l) => l.msg === 'shutdown step done');
  assert.deepEqual(
    done.map((l) => l.step),
    ['consumer', 'producer', 'db pool'],
  );
  for (const l of done) assert.equal(typeof l.ms, 'number');
  assert.equal(lines[0]?.reason, 'SIGTERM');
});

test('a failing step is logged, later steps still run, and the exit code is 1', async () => {
  const { shutdown, exits, lines } = harness();
  const ran: string[] = [];
  shutdown.onShutdown('last', () => void ran.push('last'));
  shutdown.onShutdown('broken', () => {
    throw new Error('close failed');
  });
  shutdown.onShutdown('first', async () => void ran.push('first'));

  await shutdown.shutdown('test');
  assert.deepEqual(ran, ['first', 'last']);
  assert.deepEqual(exits, [1]);
  const failed = lines.find((l) => l.msg === 'shutdown step failed');
  assert.equal(failed?.step, 'broken');
  assert.match(failed?.err?.message ?? '', /close failed/);
});

test('a failed start runs every step, logs the error as fatal and exits 1', async () => {
  const { shutdown, exits, lines } = harness();
  const ran: string[] = [];
  shutdown.onShutdown('ops server', () => void ran.push('ops server'));

  await shutdown.fail('svc failed to start', new Error('Kafka refused the login'));
  assert.deepEqual(ran, ['ops server']);
  assert.deepEqual(exits, [1]);
  const fatal = lines.find((l) => l.msg === 'svc failed to start');
  assert.equal(fatal?.level, 60);
  assert.match(fatal?.err?.message ?? '', /refused the login/);
});

test('gives up after the timeout, says what was still running, and exits 1', async () => {
  const { shutdown, exits, lines } = harness(50);
  let lastRan = false;
  shutdown.onShutdown('never reached', () => {
    lastRan = true;
  });
  shutdown.onShutdown('hangs', () => new Promise<void>(() => {}));
  shutdown.onShutdown('quick', () => {});

  await shutdown.shutdown('test');
  assert.deepEqual(exits, [1]);
  assert.equal(lastRan, false);
  const timedOut = lines.find((l) => l.msg === 'shutdown timed out');
  assert.equal(timedOut?.still_running, 'hangs');
  assert.deepEqual(timedOut?.not_started, ['never reached']);
});

test('a second signal during shutdown is logged and does not start it again', async () => {
  const { shutdown, proc, exits, lines, exited } = harness();
  let runs = 0;
  const release = Promise.withResolvers<void>();
  shutdown.onShutdown('drain', async () => {
    runs++;
    await release.promise;
  });

  proc.emit('SIGTERM');
  proc.emit('SIGINT');
  release.resolve();
  assert.equal(await exited(), 0);
  assert.equal(runs, 1);
  assert.deepEqual(exits, [0]);
  assert.ok(lines.some((l) => l.msg === 'shutdown already in progress; ignoring' && l.reason === 'SIGINT'));
});

test('an uncaught exception or unhandled rejection is logged as fatal and shuts down with exit 1', async () => {
  for (const [event, payload] of [
    ['uncaughtException', new Error('boom')],
    ['unhandledRejection', new Error('lost promise')],
  ] as const) {
    const { shutdown, proc, lines, exited } = harness();
    let closed = false;
    shutdown.onShutdown('close', () => {
      closed = true;
    });
    proc.emit(event, payload);
    assert.equal(await exited(), 1, event);
    assert.equal(closed, true, event);
    const fatal = lines.find((l) => l.level === 60);
    assert.equal(fatal?.err?.message, payload.message);
  }
});
