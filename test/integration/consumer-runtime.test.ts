/**
 * The consumer runtime against the real eqiad broker and the real registry: bad input goes to the
 * DLQ with its source named while later records flow; transient failures walk the retry topics;
 * the DLQ breaker halts a flood; checkpoints are published.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { KafkaMessage } from 'kafkajs';
import { Registry } from 'prom-client';
import { createProducer } from '../../libs/kafka/client.ts';
import {
  type ConsumedRecord,
  type RecordHandler,
  RejectedRecordError,
} from '../../libs/kafka/consumer-runtime.ts';
import { HEADER, headerString } from '../../libs/kafka/record-headers.ts';
import { dlqTopic, topicFor } from '../../libs/kafka/topics.ts';
import type { NotifyCheckpoint, NotifyEvent } from '../../libs/schemas/types.generated.ts';
import { createStreamTopics, deleteDcTopics, eventually, readTopic, testKafka, uniqueDc } from './harness.ts';
import {
  type EventRuntimeOptions,
  event,
  produceRaw as producerRaw,
  serde,
  startEventRuntime,
} from './runtime-fixture.ts';

const kafka = testKafka('eqiad');
const producer = createProducer(kafka);
const dcs: string[] = [];

before(async () => {
  await producer.connect();
});
after(async () => {
  await producer.disconnect();
  for (const dc of dcs) await deleteDcTopics(kafka, dc);
});

async function newDc(): Promise<string> {
  const dc = uniqueDc();
  dcs.push(dc);
  await createStreamTopics(kafka, dc, ['notify.event', 'notify.checkpoint'], 1);
  return dc;
}

const produceRaw = (dc: string, values: (Buffer | NotifyEvent)[]) => producerRaw(producer, dc, values);

function startRuntime(dc: string, handler: RecordHandler<NotifyEvent>, extra: EventRuntimeOptions = {}) {
  return startEventRuntime(kafka, dc, handler, extra);
}

const header = (m: KafkaMessage, name: string) => headerString(m.headers, name);

describe('consumer runtime', () => {
  test('bad input lands in the DLQ with its source named, and the records after it are processed', async () => {
    const dc = await newDc();
    const unknownSchemaId = Buffer.concat([
      Buffer.from([0, 0x7f, 0xff, 0xff, 0xf0]),
      Buffer.from('whatever'),
    ]);
    await produceRaw(dc, [
      event(dc, 'first'),
      Buffer.from('this is not avro at all'),
      unknownSchemaId,
      event(dc, 'bad-category', 'reject-me'),
      event(dc, 'last'),
    ]);
    const handled: string[] = [];
    const runtime = await startRuntime(dc, {
      handle(record) {
        if (record.value.type === 'reject-me')
          throw new RejectedRecordError('unknown-category', 'no such category: test');
        handled.push(record.value.event_id);
      },
    });
    try {
      const dead = await readTopic(kafka, dlqTopic(dc, 'notify.event', 'rt'), (m) => m.length >= 3);
      assert.deepEqual(
        dead.map((m) => [header(m, HEADER.sourceOffset), header(m, HEADER.errorKind)]),
        [
          ['1', 'malformed'],
          ['2', 'unknown-schema'],
          ['3', 'rejected:unknown-category'],
        ],
      );
      for (const m of dead) {
        assert.equal(header(m, HEADER.sourceTopic), topicFor(dc, 'notify.event'));
        assert.equal(header(m, HEADER.sourcePartition), '0');
        assert.ok(header(m, HEADER.errorMessage)?.length, 'the error is named');
      }
      assert.equal(dead[0]!.value?.toString(), 'this is not avro at all', 'the original bytes are kept');
      await eventually(() => (handled.includes('last') ? true : undefined), 'the record after the bad ones');
      assert.deepEqual(handled, ['first', 'last']);
    } finally {
      await runtime.stop();
    }
  });

  test('a transient failure is retried through the retry topics with their delays, then succeeds', async () => {
    const dc = await newDc();
    await produceRaw(dc, [event(dc, 'flaky'), event(dc, 'steady')]);
    const attempts: { id: string; attempt: number; at: number; topic: string }[] = [];
    const runtime = await startRuntime(dc, {
      handle(record: ConsumedRecord<NotifyEvent>) {
        attempts.push({
          id: record.value.event_id,
          attempt: record.attempt,
          at: Date.now(),
          topic: record.topic,
        });
        if (record.value.event_id === 'flaky' && record.attempt < 2)
          throw new Error('smtp: connection refused');
      },
    });
    try {
      await eventually(
        () => (attempts.filter((a) => a.id === 'flaky').length === 3 ? true : undefined),
        'three tries',
      );
      const flaky = attempts.filter((a) => a.id === 'flaky');
      assert.deepEqual(
        flaky.map((a) => [a.attempt, a.topic]),
        [
          [0, topicFor(dc, 'notify.event')],
          [1, `${topicFor(dc, 'notify.event')}.rt.retry-300ms`],
          [2, `${topicFor(dc, 'notify.event')}.rt.retry-600ms`],
        ],
      );
      assert.ok(flaky[1]!.at - flaky[0]!.at >= 300, 'the first retry waited its 300 ms');
      assert.ok(flaky[2]!.at - flaky[1]!.at >= 600, 'the second retry waited its 600 ms');
      const steady = attempts.find((a) => a.id === 'steady');
      assert.ok(steady && steady.at < flaky[1]!.at, 'the next record did not wait for the retry');
    } finally {
      await runtime.stop();
    }
  });

  test('a record that always fails ends in the DLQ after every retry', async () => {
    const dc = await newDc();
    await produceRaw(dc, [event(dc, 'doomed')]);
    let tries = 0;
    const runtime = await startRuntime(dc, {
      handle() {
        tries++;
        throw new Error('still broken');
      },
    });
    try {
      const [dead] = await readTopic(kafka, dlqTopic(dc, 'notify.event', 'rt'), (m) => m.length >= 1);
      assert.equal(tries, 3, 'first try plus one per retry delay');
      assert.equal(header(dead!, HEADER.attempt), '3');
      assert.equal(header(dead!, HEADER.errorKind), 'handler');
      assert.equal(
        header(dead!, HEADER.sourceTopic),
        topicFor(dc, 'notify.event'),
        'names the original topic',
      );
      assert.equal(header(dead!, HEADER.sourceOffset), '0');
      assert.match(header(dead!, HEADER.errorMessage) ?? '', /still broken/);
    } finally {
      await runtime.stop();
    }
  });

  test('an emit that does not encode fails its record once the handler returns: retried, then dead-lettered', async () => {
    const dc = await newDc();
    // produceRaw encodes with the runtime's serde, so our schema id is known and emits encode at
    // once (encodeSync): the invalid one throws inside emit, and must fail the record all the same.
    await produceRaw(dc, [event(dc, 'bad-output'), event(dc, 'fine')]);
    let tries = 0;
    let emitReturned = 0;
    const handled: string[] = [];
    const runtime = await startRuntime(dc, {
      handle(record, { emit }) {
        if (record.value.event_id !== 'bad-output') {
          handled.push(record.value.event_id);
          return;
        }
        tries++;
        emit('notify.event', { event_id: 42 } as unknown as NotifyEvent);
        emitReturned++;
      },
    });
    try {
      const [dead] = await readTopic(kafka, dlqTopic(dc, 'notify.event', 'rt'), (m) => m.length >= 1);
      assert.equal(tries, 3, 'first try plus one per retry delay');
      assert.equal(emitReturned, 3, 'emit itself never throws into the handler');
      assert.equal(header(dead!, HEADER.errorKind), 'handler');
      assert.match(header(dead!, HEADER.errorMessage) ?? '', /invalid notify\.event record/);
      assert.deepEqual(handled, ['fine']);
    } finally {
      await runtime.stop();
    }
  });

  test('the DLQ breaker pauses consumption when dead letters pile up, and resumes after its cool-down', async () => {
    const dc = await newDc();
    await produceRaw(dc, [
      ...Array.from({ length: 4 }, (_, i) => Buffer.from(`garbage ${i}`)),
      event(dc, 'after-the-flood'),
    ]);
    const handled: string[] = [];
    const registry = new Registry();
    const runtime = await startRuntime(
      dc,
      {
        handle(record) {
          handled.push(record.value.event_id);
        },
      },
      { registry, breaker: { threshold: 3, windowMs: 60_000, cooldownMs: 2_000 }, concurrency: 1 },
    );
    try {
      const dead = await readTopic(kafka, dlqTopic(dc, 'notify.event', 'rt'), (m) => m.length >= 3);
      assert.equal(dead.length, 3);
      assert.equal(runtime.readiness().ok, false, 'not ready while the breaker is open');
      assert.match(await registry.metrics(), /tidings_consumer_dlq_breaker_open\{group="rt"\} 1/);
      assert.equal(handled.length, 0, 'nothing after the flood is processed while open');
      await eventually(
        () => (handled.includes('after-the-flood') ? true : undefined),
        'resume after cool-down',
      );
      const all = await readTopic(kafka, dlqTopic(dc, 'notify.event', 'rt'), (m) => m.length >= 4);
      assert.equal(all.length, 4, 'the fourth bad record is dead-lettered once the breaker closed');
    } finally {
      await runtime.stop();
    }
  });

  test('pause() holds new records back until every pause reason is resumed', async () => {
    const dc = await newDc();
    const handled: string[] = [];
    const runtime = await startRuntime(dc, {
      handle(record) {
        handled.push(record.value.event_id);
      },
    });
    try {
      await produceRaw(dc, [event(dc, 'before')]);
      await eventually(() => (handled.includes('before') ? true : undefined), 'the first record');
      runtime.pause('smtp-rate-limit');
      runtime.pause('operator');
      await produceRaw(dc, [event(dc, 'while-paused')]);
      // Several fetch cycles (250 ms each) pass while paused; a paused consumer fetches nothing.
      await new Promise((r) => setTimeout(r, 1500));
      assert.deepEqual(handled, ['before']);
      runtime.resume('smtp-rate-limit');
      await new Promise((r) => setTimeout(r, 1000));
      assert.deepEqual(handled, ['before'], 'one reason is still holding it');
      runtime.resume('operator');
      await eventually(
        () => (handled.includes('while-paused') ? true : undefined),
        'the held record after resume',
      );
    } finally {
      await runtime.stop();
    }
  });

  test('checkpoints name the group, partition, committed offset and the last record time', async () => {
    const dc = await newDc();
    const dt = Date.now() - 60_000;
    const e = { ...event(dc, 'cp'), meta: { ...event(dc, 'cp').meta, dt } };
    await produceRaw(dc, [event(dc, 'cp0'), e]);
    const runtime = await startRuntime(dc, { handle() {} });
    try {
      const messages = await readTopic(kafka, topicFor(dc, 'notify.checkpoint'), (ms) =>
        ms.some((m) => m.key?.toString() === `rt|${topicFor(dc, 'notify.event')}|0`),
      );
      const mine = messages.filter((m) => m.key?.toString() === `rt|${topicFor(dc, 'notify.event')}|0`);
      const last = (await serde.decode('notify.checkpoint', mine.at(-1)!.value!)) as NotifyCheckpoint;
      assert.equal(last.group, 'rt');
      assert.equal(last.partition, 0);
      assert.equal(last.offset, 2);
      assert.equal(last.event_time, dt);
      assert.ok((last.record_time ?? 0) > 0);
    } finally {
      await runtime.stop();
    }
  });
});
