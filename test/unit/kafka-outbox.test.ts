import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Producer } from 'kafkajs';
import { createOutbox } from '../../libs/kafka/outbox.ts';

function fakeProducer(fail = false) {
  const requests: { topic: string; count: number }[][] = [];
  const producer = {
    async sendBatch({
      topicMessages,
      acks,
    }: {
      topicMessages: { topic: string; messages: unknown[] }[];
      acks: number;
    }) {
      assert.equal(acks, -1, 'every send waits for all in-sync replicas');
      requests.push(topicMessages.map((t) => ({ topic: t.topic, count: t.messages.length })));
      if (fail) throw new Error('broker unavailable');
      return [];
    },
  } as unknown as Producer;
  return { producer, requests };
}

test('records sent close together share one request', async () => {
  const { producer, requests } = fakeProducer();
  const outbox = createOutbox(producer, { lingerMs: 20 });
  await Promise.all([
    outbox.send([{ topic: 'a', message: { value: '1' } }]),
    outbox.send([
      { topic: 'b', message: { value: '2' } },
      { topic: 'a', message: { value: '3' } },
    ]),
  ]);
  assert.deepEqual(requests, [
    [
      { topic: 'a', count: 2 },
      { topic: 'b', count: 1 },
    ],
  ]);
});

test('a full outbox sends at once, without waiting for the linger time', async () => {
  const { producer, requests } = fakeProducer();
  const outbox = createOutbox(producer, { maxRecords: 2, lingerMs: 60_000 });
  await outbox.send([
    { topic: 'a', message: { value: '1' } },
    { topic: 'a', message: { value: '2' } },
  ]);
  assert.equal(requests.length, 1);
});

test('a failed send rejects every waiting record', async () => {
  const { producer } = fakeProducer(true);
  const outbox = createOutbox(producer, { lingerMs: 1 });
  const results = await Promise.allSettled([
    outbox.send([{ topic: 'a', message: { value: '1' } }]),
    outbox.send([{ topic: 'a', message: { value: '2' } }]),
  ]);
  assert.deepEqual(
    results.map((r) => r.status),
    ['rejected', 'rejected'],
  );
});

// Under load: one request in flight at a time, what arrives meanwhile joins the next request,
// and no request grows past its record or byte budget.

/** A producer whose requests stay in flight until released, recording the values each carried. */
function slowProducer() {
  const requests: string[][] = [];
  const pending: (() => void)[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const producer = {
    async sendBatch({ topicMessages }: { topicMessages: { messages: { value: string }[] }[] }) {
      requests.push(topicMessages.flatMap((t) => t.messages.map((m) => m.value)));
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise<void>((resolve) => pending.push(resolve));
      inFlight--;
      return [];
    },
  } as unknown as Producer;
  /** Answers the request in flight, if any, and lets the outbox react. */
  const releaseOne = async () => {
    pending.shift()?.();
    await new Promise((r) => setImmediate(r));
  };
  const releaseAll = async () => {
    while (pending.length > 0) await releaseOne();
  };
  return { producer, requests, releaseOne, releaseAll, maxInFlight: () => maxInFlight };
}

const record = (value: string) => ({ topic: 't', message: { key: null, value } });

test('records handed over while a request is in flight go out together in the next one', async () => {
  const { producer, requests, releaseAll, maxInFlight } = slowProducer();
  const outbox = createOutbox(producer, { lingerMs: 1 });
  const first = outbox.send([record('a')]);
  void outbox.flush();
  const later = [outbox.send([record('b')]), outbox.send([record('c'), record('d')])];
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(requests, [['a']], 'nothing more is sent while the first request is unanswered');
  await releaseAll();
  await Promise.all([first, ...later]);
  assert.deepEqual(requests, [['a'], ['b', 'c', 'd']]);
  assert.equal(maxInFlight(), 1);
});

test('a request stops at the byte budget; a record larger than it still goes, alone', async () => {
  const { producer, requests, releaseAll } = slowProducer();
  const outbox = createOutbox(producer, { maxBytes: 10, lingerMs: 1 });
  const sent = [
    outbox.send([record('12345')]),
    outbox.send([record('67890')]),
    outbox.send([record('abcdefghijklmnop')]),
    outbox.send([record('x')]),
  ];
  const flushed = outbox.flush();
  await releaseAll();
  await Promise.all([...sent, flushed]);
  assert.deepEqual(requests, [['12345', '67890'], ['abcdefghijklmnop'], ['x']]);
});

test('flush resolves only once everything handed over before it is acknowledged', async () => {
  const { producer, requests, releaseOne } = slowProducer();
  const outbox = createOutbox(producer, { maxRecords: 1, lingerMs: 60_000 });
  const acknowledged: string[] = [];
  for (const v of ['a', 'b', 'c']) void outbox.send([record(v)]).then(() => acknowledged.push(v));
  let flushed = false;
  const flushing = outbox.flush().then(() => {
    flushed = true;
  });
  await releaseOne();
  await releaseOne();
  assert.equal(flushed, false, 'one request is still in flight');
  await releaseOne();
  await flushing;
  assert.deepEqual(requests, [['a'], ['b'], ['c']]);
  assert.deepEqual(acknowledged, ['a', 'b', 'c'], 'acknowledged in the order handed over');
});

test("one record's outputs larger than a request may be go in several requests, each within the limits", async () => {
  const { producer, requests } = fakeProducer();
  const outbox = createOutbox(producer, { maxRecords: 1_000, maxBytes: 1_000, lingerMs: 1 });
  // 50 records of 100 bytes: at most 10 fit the byte limit of one request (the broker refuses
  // a partition's batch over message.max.bytes, and once refused the record can never be sent).
  const outputs = Array.from({ length: 50 }, (_, i) => ({
    topic: 't',
    message: { value: 'x'.repeat(100), key: `${i}` },
  }));
  await outbox.send(outputs);
  assert.ok(requests.length >= 5, `${requests.length} requests`);
  assert.equal(
    requests.reduce((n, r) => n + r.reduce((m, t) => m + t.count, 0), 0),
    50,
  );
  for (const request of requests) assert.ok(request.reduce((m, t) => m + t.count, 0) <= 10);
});
