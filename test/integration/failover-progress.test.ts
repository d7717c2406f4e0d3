/**
 * Checkpoints that reflect progress, and `tidings failover` acting on them: an idle partition whose
 * last record is days old, a group that consumed nothing, a retired topic and a partition without a
 * checkpoint must neither hold the restart time back nor skip records.
 *
 * Each test has its own pair of datacenter prefixes on the eqiad cluster: the "lost" one, whose
 * runtime writes `<lost>.notify.checkpoint`, and the "surviving" one, both read by the group. The
 * failover runs on that one cluster (`--brokers`), which is all a failover sees of the survivor:
 * its topics and the lost side's checkpoints. Mirroring itself is cli-failover.test.ts's and the
 * drill's business.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, test } from 'node:test';
import type { Kafka } from 'kafkajs';
import { CHECKPOINT_STREAM, checkpointKey } from '../../libs/kafka/checkpointer.ts';
import { createProducer, DURABLE_SEND } from '../../libs/kafka/client.ts';
import type { ConsumerRuntime } from '../../libs/kafka/consumer-runtime.ts';
import { CONSUMERS } from '../../libs/kafka/topic-plan.ts';
import { topicFor } from '../../libs/kafka/topics.ts';
import {
  BROKERS,
  createStreamTopics,
  deleteDcTopics,
  eventually,
  runTidings,
  testKafka,
  uniqueDc,
  untilCommitted,
  withAdmin,
} from './harness.ts';
import { event, serde, startEventRuntime } from './runtime-fixture.ts';

const MIN = 60_000;
const DAY = 24 * 60 * MIN;

interface MoveRow {
  group: string;
  topic: string;
  partition: number;
  current: number | null;
  new: number;
  restart_at: string | null;
  by: string;
}

const kafka = testKafka('eqiad');
const pairs: { lost: string; survivor: string }[] = [];
const runtimes: ConsumerRuntime[] = [];

/** A lost and a surviving prefix with notify.event (3 partitions) and the lost side's checkpoint topic. */
async function prefixes(): Promise<{ lost: string; survivor: string }> {
  const pair = { lost: uniqueDc(), survivor: uniqueDc() };
  pairs.push(pair);
  await createStreamTopics(kafka, pair.lost, ['notify.event', CHECKPOINT_STREAM]);
  await createStreamTopics(kafka, pair.survivor, ['notify.event']);
  return pair;
}

/** An event on `topic`'s partition whose Kafka timestamp (and event time) is `at`. */
async function produceAt(topic: string, partition: number, at: number): Promise<void> {
  const producer = createProducer(kafka);
  await producer.connect();
  try {
    const value = event(topic.split('.')[0]!, `old-${randomUUID()}`);
    value.meta.dt = at;
    await producer.send({
      topic,
      ...DURABLE_SEND,
      messages: [
        { partition, key: 'k', value: await serde.encode('notify.event', value), timestamp: String(at) },
      ],
    });
  } finally {
    await producer.disconnect();
  }
}

/** Checkpoints as a lost runtime would have published them: record times only, no caught-up time. */
async function writeCheckpoints(
  lost: string,
  group: string,
  values: { topic: string; partition: number; recordTime: number }[],
): Promise<void> {
  const producer = createProducer(kafka);
  await producer.connect();
  try {
    for (const c of values) {
      const value = await serde.encode(CHECKPOINT_STREAM, {
        meta: { id: randomUUID(), dt: Date.now(), stream: CHECKPOINT_STREAM, dc: lost, producer: 'test' },
        group,
        topic: c.topic,
        partition: c.partition,
        offset: 1,
        record_time: c.recordTime,
        event_time: c.recordTime,
      });
      await producer.send({
        topic: topicFor(lost, CHECKPOINT_STREAM),
        ...DURABLE_SEND,
        messages: [{ key: checkpointKey(group, c.topic, c.partition), value }],
      });
    }
  } finally {
    await producer.disconnect();
  }
}

/** `tidings failover` from `lost` to `survivor` on the eqiad cluster, as a plan. */
async function failoverPlan(
  { lost, survivor }: { lost: string; survivor: string },
  ...args: string[]
): Promise<{ status: number | null; rows: MoveRow[]; stderr: string }> {
  const result = await runTidings(
    '--brokers',
    BROKERS.eqiad.join(','),
    '-o',
    'json',
    'failover',
    '--from',
    lost,
    '--to',
    survivor,
    '--margin',
    '1m',
    ...args,
  );
  const rows = result.status === 0 ? (JSON.parse(result.stdout) as MoveRow[]) : [];
  return { status: result.status, rows, stderr: result.stderr };
}

async function lowOf(k: Kafka, topic: string, partition: number): Promise<number> {
  const bounds = await withAdmin(k, (admin) => admin.fetchTopicOffsets(topic));
  return Number(bounds.find((b) => b.partition === partition)?.low);
}

after(async () => {
  for (const runtime of runtimes) await runtime.stop().catch(() => undefined);
  for (const { lost, survivor } of pairs) {
    await deleteDcTopics(kafka, lost);
    await deleteDcTopics(kafka, survivor);
  }
});

describe('failover checkpoints that reflect progress', () => {
  test('an idle partition whose last record is six days old does not hold the restart time back; every partition read, empty ones too, has a checkpoint', async () => {
    const pair = await prefixes();
    const group = `progress-${pair.lost}`;
    const sixDaysAgo = Date.now() - 6 * DAY;
    await produceAt(topicFor(pair.lost, 'notify.event'), 0, sixDaysAgo);
    const started = Date.now();
    const runtime = await startEventRuntime(
      kafka,
      pair.lost,
      { handle() {} },
      { group, dcs: [pair.lost, pair.survivor], caughtUpIntervalMs: 200 },
    );
    runtimes.push(runtime);
    await untilCommitted(
      kafka,
      group,
      [topicFor(pair.lost, 'notify.event')],
      'the old record to be processed',
    );
    const read = runtime.topics();
    const plan = await eventually(
      async () => {
        const p = await failoverPlan(pair, '--group', group);
        const restartAt = Date.parse(p.rows[0]?.restart_at ?? '');
        return p.status === 0 && restartAt >= started - MIN ? p : undefined;
      },
      'a restart time after the test began',
      30_000,
    );
    // Its stream on both prefixes and its retry topics, each partition restarting by the restart time.
    assert.deepEqual([...new Set(plan.rows.map((r) => r.topic))].sort(), [...read].sort());
    assert.equal(plan.rows.length, read.length * 3);
    assert.deepEqual(
      plan.rows.filter((r) => r.by !== 'restart time'),
      [],
      'no partition lacks a checkpoint',
    );
    // Restarting after the old record, which the group had processed.
    const old = plan.rows.find((r) => r.topic === topicFor(pair.lost, 'notify.event') && r.partition === 0);
    assert.equal(old?.new, 1);
  });

  test('a group that consumed nothing has caught-up checkpoints, and failover moves it', async () => {
    const pair = await prefixes();
    const group = `idle-${pair.lost}`;
    // Writes the lost side's checkpoints, reads only the survivor's empty prefix.
    const runtime = await startEventRuntime(
      kafka,
      pair.lost,
      { handle() {} },
      { group, dcs: [pair.survivor], caughtUpIntervalMs: 200 },
    );
    runtimes.push(runtime);
    const read = (rows: MoveRow[]) => rows.filter((r) => r.topic === topicFor(pair.survivor, 'notify.event'));
    const plan = await eventually(
      async () => {
        const p = await failoverPlan(pair, '--group', group);
        return p.status === 0 && read(p.rows).every((r) => r.by === 'restart time') ? p : undefined;
      },
      `a failover plan for ${group}`,
      30_000,
    );
    assert.deepEqual(
      read(plan.rows).map((r) => [r.partition, r.new]),
      [
        [0, 0],
        [1, 0],
        [2, 0],
      ],
    );
    // The other prefix of its stream, which it never read, is read from its log start.
    assert.ok(plan.rows.filter((r) => !read(plan.rows).includes(r)).every((r) => r.by !== 'restart time'));
  });

  test('a checkpoint of a topic the group no longer reads does not hold the restart time back', async () => {
    const pair = await prefixes();
    const group = `retired-${pair.lost}`;
    const recent = Date.now() - 2 * MIN;
    await writeCheckpoints(pair.lost, group, [
      { topic: topicFor(pair.lost, 'notify.event'), partition: 0, recordTime: recent },
      // A stream since retired: its topic is gone, its last checkpoint stays in the compacted topic.
      { topic: topicFor(pair.lost, 'notify.retired'), partition: 0, recordTime: Date.now() - 6 * DAY },
    ]);
    const plan = await failoverPlan(pair, '--group', group);
    assert.equal(plan.status, 0, plan.stderr);
    assert.ok(plan.rows.length > 0);
    assert.ok(plan.rows.every((r) => r.restart_at === new Date(recent - MIN).toISOString()));
    assert.ok(plan.rows.every((r) => !r.topic.includes('notify.retired')));
  });

  test('a partition without a checkpoint restarts at its log start, not at the restart time past its records', async () => {
    const pair = await prefixes();
    const group = `nocp-${pair.lost}`;
    const topic = topicFor(pair.lost, 'notify.event');
    // Partition 1 holds a record from before the restart time that the lost group never processed.
    await produceAt(topic, 1, Date.now() - 30 * MIN);
    await writeCheckpoints(pair.lost, group, [{ topic, partition: 0, recordTime: Date.now() - 2 * MIN }]);
    const plan = await failoverPlan(pair, '--group', group);
    assert.equal(plan.status, 0, plan.stderr);
    const unchecked = plan.rows.find((r) => r.topic === topic && r.partition === 1);
    assert.equal(unchecked?.new, await lowOf(kafka, topic, 1));
    assert.equal(unchecked?.by, 'no checkpoint: log start');
  });

  test('by default every group of the topic plan moves, also one that consumed nothing', async () => {
    const pair = await prefixes();
    await createStreamTopics(kafka, pair.lost, ['notify.user']);
    // The router consumed events in the lost datacenter; router-users nothing (no checkpoint).
    await writeCheckpoints(pair.lost, 'router', [
      { topic: topicFor(pair.lost, 'notify.event'), partition: 0, recordTime: Date.now() - 2 * MIN },
    ]);
    const plan = await failoverPlan(pair);
    assert.equal(plan.status, 0, plan.stderr);
    for (const { group } of CONSUMERS) assert.match(plan.stderr, new RegExp(`(^|\\s)${group}\\s`, 'm'));
    const groups = new Set(plan.rows.map((r) => r.group));
    // Every group reading the two streams that exist under these prefixes; the others have no topics.
    assert.deepEqual(
      [...groups].sort(),
      CONSUMERS.filter((c) => ['notify.event', 'notify.user'].includes(c.stream))
        .map((c) => c.group)
        .sort(),
    );
    const users = plan.rows.filter((r) => r.group === 'router-users');
    assert.deepEqual(
      users.map((r) => `${r.topic}:${r.partition}`).sort(),
      [0, 1, 2].map((p) => `${topicFor(pair.lost, 'notify.user')}:${p}`),
    );
    assert.ok(users.every((r) => r.by === 'no checkpoint: log start' && r.new === 0));
  });
});
