/**
 * The runtime's hooks for stateful handlers, against the real broker: afterDurable runs once the
 * batch's emitted records are acknowledged and before its offsets commit (a failing hook makes the
 * batch run again); tombstones of a compacted stream reach handleTombstone instead of the DLQ; an
 * output emitted evenIfFailed goes out with a failed record's retry or dead letter; with
 * prepareSlice, prepareBatch runs per slice, the next slice's call already under way when the current
 * slice's records are handled.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { createProducer } from '../../libs/kafka/client.ts';
import {
  type ConsumerRuntime,
  createConsumerRuntime,
  DeferredRecordError,
  type RecordHandler,
  RejectedRecordError,
} from '../../libs/kafka/consumer-runtime.ts';
import { topicFor } from '../../libs/kafka/topics.ts';
import type { StreamName } from '../../libs/schemas/catalog.ts';
import { createSerde } from '../../libs/schemas/serde.ts';
import type { StreamRecords } from '../../libs/schemas/types.generated.ts';
import {
  createConsumerTopics,
  createStreamTopics,
  deleteDcTopics,
  eventually,
  quietLog,
  REGISTRY_URL,
  readTopic,
  testKafka,
  uniqueDc,
  withAdmin,
} from './harness.ts';

const kafka = testKafka('eqiad');
const serde = createSerde({ registryUrl: REGISTRY_URL });
const producer = createProducer(kafka);
const dcs: string[] = [];
const RETRY_DELAYS_MS = [300];

before(() => producer.connect());
after(async () => {
  await producer.disconnect();
  for (const dc of dcs) await deleteDcTopics(kafka, dc);
});

async function newDc(): Promise<string> {
  const dc = uniqueDc();
  dcs.push(dc);
  await createStreamTopics(
    kafka,
    dc,
    ['notify.event', 'notify.user', 'notify.preference-change', 'notify.checkpoint'],
    1,
  );
  for (const stream of ['notify.event', 'notify.user', 'notify.preference-change']) {
    await createConsumerTopics(kafka, dc, { stream, service: 'rt', retryDelaysMs: RETRY_DELAYS_MS });
  }
  return dc;
}

const meta = (dc: string, stream: string) => ({
  id: randomUUID(),
  dt: Date.now(),
  stream,
  dc,
  producer: 'test',
  request_id: null,
});

/** Events without recipients, keyed by their ids, to `<dc>.notify.event`. */
async function sendEvents(dc: string, ids: readonly string[]): Promise<void> {
  await producer.send({
    topic: topicFor(dc, 'notify.event'),
    acks: -1,
    messages: await Promise.all(
      ids.map(async (id) => ({
        key: id,
        value: await serde.encode('notify.event', {
          meta: meta(dc, 'notify.event'),
          event_id: id,
          type: 't',
          category: 'c',
          recipients: [],
        }),
      })),
    ),
  });
}

async function sum(topic: string, read: 'end' | 'committed', group = 'rt'): Promise<number> {
  return withAdmin(kafka, async (admin) => {
    if (read === 'end') return (await admin.fetchTopicOffsets(topic)).reduce((n, p) => n + Number(p.high), 0);
    const [t] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    return (t?.partitions ?? []).reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
  });
}

function runtimeFor<S extends StreamName, B>(
  dc: string,
  stream: S,
  handler: RecordHandler<StreamRecords[S], B>,
  options: { prepareSlice?: number } = {},
) {
  return createConsumerRuntime<S, B>({
    kafka,
    codec: serde,
    log: quietLog,
    registry: new Registry(),
    service: 'rt',
    dc,
    dcs: [dc],
    stream,
    handler,
    retryDelaysMs: RETRY_DELAYS_MS,
    ...options,
  });
}

/** Runs the runtime until `count` records of `source` are committed, and stops it. */
async function runUntilCommitted(runtime: ConsumerRuntime, source: string, count: number): Promise<void> {
  await runtime.start();
  try {
    await eventually(
      async () => ((await sum(source, 'committed')) === count ? true : undefined),
      'a full commit',
    );
  } finally {
    await runtime.stop();
  }
}

describe('consumer runtime hooks', () => {
  test('afterDurable sees its outputs acknowledged and the offsets not yet committed; a failure reruns the batch', async () => {
    const dc = await newDc();
    const source = topicFor(dc, 'notify.event');
    const output = topicFor(dc, 'notify.preference-change');
    const ids = Array.from({ length: 20 }, (_, i) => `e${i}`);
    await sendEvents(dc, ids);

    const handled: string[] = [];
    const hooked: { ids: string[]; outputs: number; committed: number }[] = [];
    let failOnce = true;
    const runtime = runtimeFor(dc, 'notify.event', {
      handle(record, ctx) {
        handled.push(record.value.event_id);
        ctx.emit(
          'notify.preference-change',
          {
            meta: ctx.derivedMeta('notify.preference-change'),
            user_id: record.value.event_id,
            channel: 'web',
            enabled: true,
            reason: 'test',
          },
          { key: record.value.event_id },
        );
      },
      async afterDurable(records) {
        hooked.push({
          ids: records.map((r) => r.value.event_id),
          outputs: await sum(output, 'end'),
          committed: await sum(source, 'committed'),
        });
        if (failOnce) {
          failOnce = false;
          throw new Error('the database is away');
        }
      },
    });
    await runUntilCommitted(runtime, source, ids.length);
    const first = hooked[0]!;
    assert.ok(first.outputs >= first.ids.length, 'the batch outputs were in Kafka when the hook ran');
    assert.equal(first.committed, 0, 'nothing was committed before the hook succeeded');
    assert.ok(hooked.length >= 2, 'the failed batch was handled again');
    assert.deepEqual(
      [...new Set(hooked.slice(1).flatMap((h) => h.ids))].sort(),
      [...ids].sort(),
      'every record reached a successful hook',
    );
    assert.ok(handled.length > ids.length, 'records of the failed batch were handled twice');
  });

  test('what a failed record emitted evenIfFailed goes out with its retry and its dead letter; its other outputs do not', async () => {
    const dc = await newDc();
    const source = topicFor(dc, 'notify.event');
    const output = topicFor(dc, 'notify.preference-change');
    await sendEvents(dc, ['retried', 'rejected']);
    const runtime = runtimeFor(dc, 'notify.event', {
      handle(record, ctx) {
        const id = record.value.event_id;
        const say = (what: string, evenIfFailed: boolean) =>
          ctx.emit(
            'notify.preference-change',
            {
              meta: ctx.derivedMeta('notify.preference-change'),
              user_id: `${id} ${what} ${record.attempt}`,
              channel: 'web',
              enabled: true,
              reason: 'test',
            },
            { key: id, evenIfFailed },
          );
        say('told', true);
        say('output', false);
        if (id === 'rejected') throw new RejectedRecordError('never-good');
        if (record.attempt === 0) throw new Error('a transient failure');
      },
    });
    await runtime.start();
    let said: string[] = [];
    try {
      // Both records leave the main topic, and the retried one succeeds on its retry topic.
      await eventually(
        async () => ((await sum(source, 'committed')) === 2 ? true : undefined),
        'a full commit',
      );
      await eventually(async () => ((await sum(output, 'end')) >= 4 ? true : undefined), 'the retry handled');
      const messages = await readTopic(kafka, output, (m) => m.length >= 4);
      said = await Promise.all(
        messages.map(async (m) => (await serde.decode('notify.preference-change', m.value!)).user_id),
      );
    } finally {
      await runtime.stop();
    }
    assert.equal(await sum(output, 'end'), 4, 'nothing else was emitted');
    assert.deepEqual(said.sort(), [
      'rejected told 0',
      'retried output 1',
      'retried told 0',
      'retried told 1',
    ]);
  });

  test('prepareSlice: prepareBatch per slice, chained, the next one started before the current slice is handled', async () => {
    const dc = await newDc();
    const source = topicFor(dc, 'notify.event');
    const ids = Array.from({ length: 8 }, (_, i) => `e${i}`);
    await sendEvents(dc, ids);

    interface Slice {
      ids: string[];
      previous: Slice | undefined;
    }
    const prepared: Slice[] = [];
    // For each handled record: its slice, and how many prepareBatch calls had begun by then.
    const handled: { id: string; slice: Slice; begun: number }[] = [];
    const hooked: { ids: string[]; batch: Slice }[] = [];
    const runtime = runtimeFor<'notify.event', Slice>(
      dc,
      'notify.event',
      {
        async prepareBatch(records, previous) {
          const slice = { ids: records.map((r) => r.value.event_id), previous };
          prepared.push(slice);
          return slice;
        },
        handle(record, ctx) {
          handled.push({ id: record.value.event_id, slice: ctx.batch, begun: prepared.length });
        },
        async afterDurable(records, batch) {
          hooked.push({ ids: records.map((r) => r.value.event_id), batch });
        },
      },
      { prepareSlice: 3 },
    );
    await runUntilCommitted(runtime, source, ids.length);
    assert.ok(
      prepared.every((s) => s.ids.length <= 3),
      `slices of at most 3: ${prepared.map((s) => s.ids.join(','))}`,
    );
    assert.ok(prepared.length >= 3, 'eight records took three slices or more');
    assert.ok(
      prepared.some((s) => s.previous !== undefined),
      'a later slice got the context of the slice before it',
    );
    for (const { id, slice, begun } of handled) {
      assert.ok(slice.ids.includes(id), `${id} was handled with the context of its own slice`);
      const index = prepared.indexOf(slice);
      const nextInBatch = prepared[index + 1]?.previous === slice;
      if (nextInBatch)
        assert.ok(begun > index + 1, `the slice after ${id}'s was being prepared while ${id} ran`);
    }
    for (const { ids: done, batch } of hooked) {
      assert.ok(!prepared.some((s) => s.previous === batch), 'afterDurable got the last slice of its batch');
      let chain: Slice | undefined = batch;
      const covered: string[] = [];
      while (chain) {
        covered.push(...chain.ids);
        chain = chain.previous;
      }
      assert.deepEqual([...done].sort(), [...covered].sort(), 'afterDurable saw every record of the chain');
    }
    assert.deepEqual([...new Set(handled.map((h) => h.id))].sort(), [...ids].sort());
  });

  test('prepareSlice: a hold taken in one slice prepares and handles no later slice until it ends; then each record once', async () => {
    const dc = await newDc();
    const source = topicFor(dc, 'notify.event');
    const ids = Array.from({ length: 12 }, (_, i) => `e${i}`);
    await sendEvents(dc, ids);

    const HOLD_MS = 1_500;
    let hold: { from: number; until: number } | undefined;
    const preparedAt: number[] = [];
    const handledAt: number[] = [];
    const handled: string[] = [];
    const runtime = runtimeFor<'notify.event', undefined>(
      dc,
      'notify.event',
      {
        async prepareBatch() {
          preparedAt.push(Date.now());
          return undefined;
        },
        handle(record, ctx) {
          handledAt.push(Date.now());
          if (!hold) {
            hold = { from: Date.now(), until: Date.now() + HOLD_MS };
            ctx.hold('test', { until: hold.until });
            throw new DeferredRecordError('held');
          }
          handled.push(record.value.event_id);
        },
      },
      { prepareSlice: 3 },
    );
    await runUntilCommitted(runtime, source, ids.length);
    assert.ok(hold, 'the first record took the hold');
    // Wall-clock times against a timer's: the resume may read a millisecond or so short of `until`.
    const during = (t: number) => t > hold!.from && t < hold!.until - 100;
    // The slice after the holding one was being prepared already; none after it may start.
    assert.deepEqual(preparedAt.filter(during), [], 'no slice was prepared while held');
    assert.deepEqual(handledAt.filter(during), [], 'no record was handled while held');
    assert.deepEqual([...handled].sort(), [...ids].sort(), 'after the hold, every record was handled once');
  });

  test('prepareSlice: a stop while the next slice is being prepared handles none of it; a restart handles the rest, each record once', async () => {
    const dc = await newDc();
    const source = topicFor(dc, 'notify.event');
    const ids = Array.from({ length: 9 }, (_, i) => `e${i}`);
    await sendEvents(dc, ids);

    const secondSliceAsked = Promise.withResolvers<void>();
    const releaseSecondSlice = Promise.withResolvers<void>();
    let prepares = 0;
    const handled: string[] = [];
    const first = runtimeFor<'notify.event', undefined>(
      dc,
      'notify.event',
      {
        async prepareBatch() {
          if (++prepares === 2) {
            secondSliceAsked.resolve();
            await releaseSecondSlice.promise;
          }
          return undefined;
        },
        handle(record) {
          handled.push(record.value.event_id);
        },
      },
      { prepareSlice: 3 },
    );
    await first.start();
    // The second slice's look-up started before the first slice was handled, and hangs: stop now,
    // and let the look-up answer once the stop is under way.
    await secondSliceAsked.promise;
    const stopped = first.stop();
    releaseSecondSlice.resolve();
    await stopped;
    assert.deepEqual(handled, ['e0', 'e1', 'e2'], 'only the first slice was handled');

    const rest: string[] = [];
    const second = runtimeFor(dc, 'notify.event', {
      handle(record) {
        rest.push(record.value.event_id);
      },
    });
    await runUntilCommitted(second, source, ids.length);
    assert.deepEqual([...rest].sort(), ids.slice(3).sort(), 'the restart handled the rest, none twice');
  });

  test('a tombstone on a compacted stream reaches handleTombstone with its key', async () => {
    const dc = await newDc();
    await producer.send({
      topic: topicFor(dc, 'notify.user'),
      acks: -1,
      messages: [
        {
          key: 'u1',
          value: await serde.encode('notify.user', { meta: meta(dc, 'notify.user'), user_id: 'u1' }),
        },
        { key: 'u1', value: null },
      ],
    });
    const seen: string[] = [];
    const runtime = runtimeFor(dc, 'notify.user', {
      handle: (record) => {
        seen.push(`user ${record.value.user_id}`);
      },
      handleTombstone: (record) => {
        seen.push(`tombstone ${record.key}`);
      },
    });
    await runtime.start();
    try {
      await eventually(() => (seen.length >= 2 ? true : undefined), 'both records handled');
    } finally {
      await runtime.stop();
    }
    assert.deepEqual(seen, ['user u1', 'tombstone u1']);
  });
});
