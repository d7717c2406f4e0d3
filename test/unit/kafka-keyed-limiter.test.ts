import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createKeyedLimiter } from '../../libs/kafka/keyed-limiter.ts';

test('never runs more than the limit at once', async () => {
  const limiter = createKeyedLimiter(3);
  let running = 0;
  let peak = 0;
  await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      limiter.run(`k${i}`, async () => {
        running++;
        peak = Math.max(peak, running);
        await sleep(2);
        running--;
      }),
    ),
  );
  assert.equal(peak, 3);
});

test('runs tasks of one key in submission order, others in parallel', async () => {
  const limiter = createKeyedLimiter(8);
  const order: string[] = [];
  const task = (name: string, ms: number) => async () => {
    await sleep(ms);
    order.push(name);
  };
  await Promise.all([
    limiter.run('alice', task('a1', 20)),
    limiter.run('alice', task('a2', 1)),
    limiter.run('bob', task('b1', 5)),
    limiter.run('alice', task('a3', 1)),
  ]);
  assert.ok(order.indexOf('a1') < order.indexOf('a2') && order.indexOf('a2') < order.indexOf('a3'));
  assert.equal(order[0], 'b1', 'bob does not wait for alice');
});

test('a failed task does not stop the next task of the same key', async () => {
  const limiter = createKeyedLimiter(2);
  const first = limiter.run('k', async () => {
    throw new Error('boom');
  });
  const second = limiter.run('k', async () => 'ran');
  await assert.rejects(first, /boom/);
  assert.equal(await second, 'ran');
});

test('a task that returns a value reports it before submit returns, in order per key', () => {
  const limiter = createKeyedLimiter(4);
  const seen: string[] = [];
  const runner = {
    run: (name: string) => name.toUpperCase(),
    done: (_: string, value: string) => seen.push(value),
    failed: (_: string, error: unknown) => assert.fail(String(error)),
  };
  for (const name of ['a1', 'b1', 'a2']) {
    limiter.submit(name[0]!, runner, name);
    assert.equal(seen.at(-1), name.toUpperCase(), `${name} was reported synchronously`);
  }
  assert.equal(limiter.active(), 0);
});

test('a long run of synchronous tasks queued behind a slow one runs without growing the stack', async () => {
  const limiter = createKeyedLimiter(1);
  const slow = limiter.run('k', () => sleep(5));
  let done = 0;
  let failed: unknown;
  const runner = {
    run: (i: number) => i,
    done: () => done++,
    failed: (_: number, error: unknown) => {
      failed = error;
    },
  };
  for (let i = 0; i < 100_000; i++) limiter.submit(i % 2 ? 'k' : `other${i}`, runner, i);
  await slow;
  assert.equal(failed, undefined);
  assert.equal(done, 100_000);
});
