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
