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
