/**
 * Fault injection against the consumer runtime on the real eqiad broker: each test is one way the
 * runtime once broke its promises (a retry timer firing during a hold, a batch longer than the
 * session timeout, a missing checkpoint topic, a failed batch, a topic appearing after the start),
 * and fails on the runtime before the fix. Session timeouts are the broker's minimum (6 s), so the
 * suite stays quick.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Registry } from 'prom-client';
import { createProducer } from '../../libs/kafka/client.ts';
import { topicFor } from '../../libs/kafka/topics.ts';
import {
  createStreamTopics,
  deleteDcTopics,
  eventually,
  readTopic,
  testKafka,
  uniqueDc,
  untilCommitted,
  withAdmin,
} from '../integration/harness.ts';
import { event, produceRaw, registryValue, startEventRuntime } from '../integration/runtime-fixture.ts';

const kafka = testKafka('eqiad');
const producer = createProducer(kafka);
const dcs: string[] = [];

before(() => producer.connect());
after(async () => {
  await producer.disconnect();
  for (const dc of dcs) await deleteDcTopics(kafka, dc);
});

async function newDc(partitions = 1, streams = ['notify.event', 'notify.checkpoint']): Promise<string> {
  const dc = uniqueDc();
  dcs.push(dc);
  await createStreamTopics(kafka, dc, streams, partitions);
  return dc;
}

/** `n` events `<prefix>0`, `<prefix>1`, ... under one key, so one partition handles them in order. */
async function produceInOrder(dc: string, prefix: string, n: number): Promise<string[]> {
  const ids = Array.from({ length: n }, (_, i) => `${prefix}${i}`);
  await produceRaw(
    producer,
    dc,
    ids.map((id) => event(dc, id)),
    () => 'one-key',
  );
  return ids;
}

/** How often each event id was handled. */
function tally() {
  const counts = new Map<string, number>();
  return {
    add: (id: string) => counts.set(id, (counts.get(id) ?? 0) + 1),
    of: (id: string) => counts.get(id) ?? 0,
    counts,
  };
}

describe('consumer runtime under faults', () => {
  test('a retry partition whose due time passes during a service-wide hold stays held: no fetch loop', async (t) => {
    const dc = await newDc();
    const handled = tally();
    let prepared = 0;
    let failedAt = 0;
    const registry = new Registry();
    const runtime = await startEventRuntime(
      kafka,
      dc,
      {
        async prepareBatch() {
          prepared++;
        },
        handle(record) {
          handled.add(record.value.event_id);
          if (record.attempt === 0) {
            failedAt = Date.now();
            throw new Error('downstream refused');
          }
        },
      },
      { registry, retryDelaysMs: [2_000] },
    );
    try {
      await produceRaw(producer, dc, [event(dc, 'a')]);
      await eventually(() => (failedAt > 0 ? true : undefined), 'the first failure');
      // The retry record is fetched and its partition waits for its due time; then the whole
      // consumer is held, across that due time.
      await sleep(Math.max(0, failedAt + 800 - Date.now()));
      const preparedBefore = prepared;
      const fetchedBefore = await registryValue(registry, 'tidings_consumer_batches_total', {
        step: 'fetched',
      });
      runtime.pause('maintenance');
      await sleep(Math.max(0, failedAt + 4_000 - Date.now()));
      const fetched =
        (await registryValue(registry, 'tidings_consumer_batches_total', { step: 'fetched' })) -
        fetchedBefore;
      t.diagnostic(
        `while held across the due time: ${fetched} batches fetched, ${prepared - preparedBefore} prepared`,
      );
      assert.equal(prepared - preparedBefore, 0, 'no batch is prepared while the consumer is held');
      assert.ok(fetched <= 3, `${fetched} batches fetched while held`);
      assert.equal(handled.of('a'), 1, 'the retry waits for the hold');
      runtime.resume('maintenance');
      await eventually(() => (handled.of('a') === 2 ? true : undefined), 'the retry after the hold');
    } finally {
      await runtime.stop();
    }
  });

  test('a batch longer than the session timeout under afterDurable handles each record once, without eviction', async () => {
    const dc = await newDc();
    const handled = tally();
    const durable: string[] = [];
    const ids = await produceInOrder(dc, 'slow', 5);
    const runtime = await startEventRuntime(
      kafka,
      dc,
      {
        async handle(record) {
          handled.add(record.value.event_id);
          await sleep(2_000);
        },
        async afterDurable(records) {
          durable.push(...records.map((r) => r.value.event_id));
        },
      },
      { sessionTimeoutMs: 6_000, concurrency: 1 },
    );
    try {
      await untilCommitted(kafka, 'rt', [topicFor(dc, 'notify.event')], 'the slow batch to commit', 60_000);
      await sleep(1_000);
      for (const id of ids) assert.equal(handled.of(id), 1, `${id} handled once`);
      assert.deepEqual(durable, ids);
    } finally {
      await runtime.stop();
    }
  });

  test('a rebalance stops a long batch taking records; what was in flight commits, nothing runs twice', async () => {
    const dc = await newDc();
    const handled = tally();
    const ids = await produceInOrder(dc, 'r', 8);
    const handler = {
      async handle(record: { value: { event_id: string } }) {
        handled.add(record.value.event_id);
        await sleep(1_500);
      },
      async afterDurable() {},
    };
    const options = { sessionTimeoutMs: 6_000, concurrency: 1, group: `rebalance-${dc}` };
    const first = await startEventRuntime(kafka, dc, handler, options);
    let second: Awaited<ReturnType<typeof startEventRuntime>> | undefined;
    try {
      await eventually(() => (handled.of('r1') === 1 ? true : undefined), 'the batch under way');
      second = await startEventRuntime(kafka, dc, handler, options);
      await untilCommitted(
        kafka,
        options.group,
        [topicFor(dc, 'notify.event')],
        'every record committed',
        90_000,
      );
      await sleep(1_000);
      for (const id of ids) assert.equal(handled.of(id), 1, `${id} handled once`);
    } finally {
      await Promise.all([first.stop(), second?.stop()]);
    }
  });

  test('without its checkpoint topic a consumer refuses to start, naming the topic', async () => {
    const dc = await newDc(1, ['notify.event']);
    let refusal: Error | undefined;
    await startEventRuntime(kafka, dc, { handle() {} }).then(
      (runtime) => runtime.stop(),
      (error: Error) => {
        refusal = error;
      },
    );
    assert.ok(refusal, 'the consumer started without its checkpoint topic');
    assert.match(
      refusal.message,
      new RegExp(`${topicFor(dc, 'notify.checkpoint').replaceAll('.', '\\.')}.*tidings topics apply`),
    );
  });

  test('a checkpoint topic lost while running never rejects or repeats data records', async () => {
    const dc = await newDc(3);
    const copies = `${topicFor(dc, 'notify.event')}.copies`;
    await withAdmin(kafka, (admin) => admin.createTopics({ topics: [{ topic: copies, numPartitions: 1 }] }));
    const handled = tally();
    const runtime = await startEventRuntime(
      kafka,
      dc,
      {
        handle(record, { emit }) {
          handled.add(record.value.event_id);
          emit('notify.event', record.value, { topic: copies, key: record.key });
        },
      },
      { checkpointIntervalMs: 100 },
    );
    const ids = Array.from({ length: 60 }, (_, i) => `c${i}`);
    try {
      await withAdmin(kafka, (admin) => admin.deleteTopics({ topics: [topicFor(dc, 'notify.checkpoint')] }));
      for (let i = 0; i < ids.length; i += 6) {
        await produceRaw(
          producer,
          dc,
          ids.slice(i, i + 6).map((id) => event(dc, id)),
          (j) => `key${i + j}`,
        );
        await sleep(150);
      }
      const out = await readTopic(kafka, copies, (m) => m.length >= ids.length, 60_000);
      await untilCommitted(kafka, 'rt', [topicFor(dc, 'notify.event')], 'every record committed');
      await sleep(500);
      for (const id of ids) assert.equal(handled.of(id), 1, `${id} handled once`);
      assert.equal((await readTopic(kafka, copies, (m) => m.length >= out.length)).length, ids.length);
    } finally {
      await runtime.stop();
    }
  });

  test('a failed batch resumes after its last committed record, not from its start', async () => {
    const dc = await newDc();
    const handled = tally();
    const ids = await produceInOrder(dc, 'f', 8);
    const runtime = await startEventRuntime(
      kafka,
      dc,
      {
        async handle(record, { emit }) {
          handled.add(record.value.event_id);
          await sleep(30);
          // Once, a record too large for the broker: its send fails, and with it the batch.
          if (record.value.event_id === 'f4' && handled.of('f4') === 1) {
            emit('notify.event', { ...record.value, extra: { big: 'x'.repeat(2 * 1024 * 1024) } });
          }
        },
      },
      { concurrency: 1, commitIntervalMs: 0 },
    );
    try {
      await untilCommitted(kafka, 'rt', [topicFor(dc, 'notify.event')], 'every record committed');
      await sleep(500);
      assert.deepEqual(
        ids.map((id) => handled.of(id)),
        [1, 1, 1, 1, 2, 1, 1, 1],
        'only the record whose send failed runs again',
      );
    } finally {
      await runtime.stop();
    }
  });

  test('a topic of the stream created after the start is consumed within the refresh interval', async () => {
    const dc = await newDc();
    const later = uniqueDc();
    dcs.push(later);
    const handled = tally();
    const runtime = await startEventRuntime(
      kafka,
      dc,
      { handle: (record) => void handled.add(record.value.event_id) },
      { dcs: [dc, later], topicRefreshIntervalMs: 1_000 },
    );
    try {
      await produceRaw(producer, dc, [event(dc, 'local')]);
      await eventually(() => (handled.of('local') === 1 ? true : undefined), 'the local record');
      // As MirrorMaker creates the other datacenter's copy once it has records.
      await createStreamTopics(kafka, later, ['notify.event'], 1);
      await produceRaw(producer, later, [event(later, 'mirrored')]);
      await eventually(
        () => (handled.of('mirrored') === 1 ? true : undefined),
        'the record on the new topic',
      );
      assert.ok(runtime.topics().includes(topicFor(later, 'notify.event')));
      await untilCommitted(kafka, 'rt', [topicFor(later, 'notify.event')], 'the new topic committed');
      assert.equal(handled.of('local'), 1, 'the restart of the subscription repeats nothing');
    } finally {
      await runtime.stop();
    }
  });
});
