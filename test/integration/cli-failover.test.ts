/**
 * `tidings failover` against both real clusters: checkpoints and records written in eqiad reach
 * codfw through MirrorMaker, and the command repositions a group on codfw by their timestamps.
 * The topics are the real, shared ones (MirrorMaker copies only eqiad.* and codfw.*); the group is
 * this run's own, and expected offsets come from reading codfw's copy of the logs.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Consumer, Kafka } from 'kafkajs';
import { CHECKPOINT_STREAM, checkpointKey } from '../../libs/kafka/checkpointer.ts';
import { createProducer, DURABLE_SEND } from '../../libs/kafka/client.ts';
import { partitionKey } from '../../libs/kafka/offset-plan.ts';
import { readRanges } from '../../libs/kafka/topic-reader.ts';
import { topicFor } from '../../libs/kafka/topics.ts';
import { createSerde } from '../../libs/schemas/serde.ts';
import { eventually, REGISTRY_URL, runTidings, testKafka, withAdmin } from './harness.ts';

const MIN = 60_000;
const MIRROR_DEADLINE_MS = 60_000;
const STREAM = 'notify.event';

interface LogRecord {
  partition: number;
  offset: number;
  timestamp: number;
  key: string;
}

/** Every record of `topic` on one cluster, oldest first per partition, with the log ends. */
async function readLog(
  kafka: Kafka,
  topic: string,
): Promise<{ records: LogRecord[]; ends: Map<number, number>; lows: Map<number, number> }> {
  const bounds = await withAdmin(kafka, (admin) => admin.fetchTopicOffsets(topic));
  const records: LogRecord[] = [];
  await readRanges(kafka, {
    ranges: bounds.map((b) => ({ topic, partition: b.partition, from: Number(b.low), to: Number(b.high) })),
    onRecord: ({ partition, message }) => {
      records.push({
        partition,
        offset: Number(message.offset),
        timestamp: Number(message.timestamp),
        key: message.key?.toString('utf8') ?? '',
      });
      return true;
    },
  });
  return {
    records,
    ends: new Map(bounds.map((b) => [b.partition, Number(b.high)])),
    lows: new Map(bounds.map((b) => [b.partition, Number(b.low)])),
  };
}

/**
 * Where failover puts each partition, as seen in the copy read: a checkpointed one at the first
 * offset at or after `time` (the log end if none), any other at its log start.
 */
function restartOffsets(
  log: Awaited<ReturnType<typeof readLog>>,
  topic: string,
  time: number,
  checkpointed: (partition: number) => boolean,
): Map<string, number> {
  const expected = new Map<string, number>();
  for (const [partition, end] of log.ends) {
    if (!checkpointed(partition)) {
      expected.set(partitionKey(topic, partition), log.lows.get(partition) ?? 0);
      continue;
    }
    const first = log.records
      .filter((r) => r.partition === partition && r.timestamp >= time)
      .sort((a, b) => a.offset - b.offset)[0];
    expected.set(partitionKey(topic, partition), first?.offset ?? end);
  }
  return expected;
}

async function committedOn(kafka: Kafka, group: string): Promise<Map<string, number>> {
  const topics = await withAdmin(kafka, (admin) => admin.fetchOffsets({ groupId: group }));
  return new Map(
    topics.flatMap((t) =>
      t.partitions
        .filter((p) => Number(p.offset) >= 0)
        .map((p) => [partitionKey(t.topic, p.partition), Number(p.offset)] as const),
    ),
  );
}

describe('tidings failover', () => {
  const eqiad = testKafka('eqiad');
  const codfw = testKafka('codfw');
  const run = randomBytes(4).toString('hex');
  const group = `fo-${run}`;
  const mirrored = topicFor('eqiad', STREAM);
  const local = topicFor('codfw', STREAM);
  const dir = mkdtempSync(join(tmpdir(), 'tidings-failover-'));
  const base = Math.floor(Date.now() / 1000) * 1000;
  const ago = (minutes: number) => base - minutes * MIN;
  // What this run wrote: eqiad.notify.event partitions 0 and 1 in eqiad (mirrored to codfw),
  // codfw.notify.event partition 0 in codfw.
  const produced = [
    { cluster: eqiad, topic: mirrored, partition: 0, minutes: [10, 8, 6, 4] },
    { cluster: eqiad, topic: mirrored, partition: 1, minutes: [9, 7, 5] },
    { cluster: codfw, topic: local, partition: 0, minutes: [10, 7, 3] },
  ];
  const keyOf = (topic: string, partition: number, minutes: number) =>
    `${group}-${topic}-${partition}-${minutes}`;
  // The last record each eqiad consumer processed; partition 1's first checkpoint is superseded.
  const checkpoints = [
    { topic: mirrored, partition: 0, minutes: 6 },
    { topic: mirrored, partition: 1, minutes: 9 },
    { topic: mirrored, partition: 1, minutes: 7 },
    { topic: local, partition: 0, minutes: 3 },
  ];
  // Earliest newest checkpoint: 7 minutes ago; with a one-minute margin the group restarts 8 minutes ago.
  const restartAt = ago(8);
  const expected = new Map<string, number>();
  const myOffsets = new Map<string, number>();
  const serde = createSerde({ registryUrl: REGISTRY_URL });

  async function writeCheckpoints(values: { topic: string; partition: number; minutes: number | null }[]) {
    const producer = createProducer(eqiad);
    await producer.connect();
    try {
      for (const c of values) {
        const value =
          c.minutes === null
            ? null
            : await serde.encode(CHECKPOINT_STREAM, {
                meta: {
                  id: randomUUID(),
                  dt: Date.now(),
                  stream: CHECKPOINT_STREAM,
                  dc: 'eqiad',
                  producer: 'test',
                },
                group,
                topic: c.topic,
                partition: c.partition,
                offset: 1,
                record_time: ago(c.minutes),
                event_time: ago(c.minutes),
              });
        await producer.send({
          topic: topicFor('eqiad', CHECKPOINT_STREAM),
          ...DURABLE_SEND,
          messages: [{ key: checkpointKey(group, c.topic, c.partition), value }],
        });
      }
    } finally {
      await producer.disconnect();
    }
  }

  before(async () => {
    for (const { cluster, topic, partition, minutes } of produced) {
      const producer = createProducer(cluster);
      await producer.connect();
      await producer.send({
        topic,
        ...DURABLE_SEND,
        // Real, already expired events: a router reading these shared topics later drops them as
        // expired instead of dead-lettering them.
        messages: await Promise.all(
          minutes.map(async (m) => ({
            partition,
            key: keyOf(topic, partition, m),
            value: await serde.encode('notify.event', {
              meta: {
                id: randomUUID(),
                dt: ago(m),
                stream: 'notify.event',
                dc: 'eqiad',
                producer: 'failover-test',
              },
              event_id: keyOf(topic, partition, m),
              type: 'failover-test',
              category: 'mention',
              recipients: [],
              expires_at: ago(m),
            }),
            timestamp: String(ago(m)),
          })),
        ),
      });
      await producer.disconnect();
    }
    await writeCheckpoints(checkpoints);
    // MirrorMaker copies eqiad's records and checkpoints to codfw.
    const mine = (log: Awaited<ReturnType<typeof readLog>>) =>
      log.records.filter((r) => r.key.startsWith(`${group}-`));
    const mirroredLog = await eventually(
      async () => {
        const log = await readLog(codfw, mirrored);
        return mine(log).length === 7 ? log : undefined;
      },
      `${mirrored} records of ${group} on codfw`,
      MIRROR_DEADLINE_MS,
    );
    await eventually(
      async () => {
        const log = await readLog(codfw, topicFor('eqiad', CHECKPOINT_STREAM));
        return log.records.filter((r) => r.key.startsWith(`${group}|`)).length >= 4 ? true : undefined;
      },
      `checkpoints of ${group} on codfw`,
      MIRROR_DEADLINE_MS,
    );
    const localLog = await readLog(codfw, local);
    for (const [topic, log] of [
      [mirrored, mirroredLog],
      [local, localLog],
    ] as const) {
      const checkpointed = (partition: number) =>
        checkpoints.some((c) => c.topic === topic && c.partition === partition);
      for (const [key, offset] of restartOffsets(log, topic, restartAt, checkpointed)) {
        expected.set(key, offset);
      }
      for (const r of mine(log)) myOffsets.set(r.key, r.offset);
    }
    // A stale position the group holds on codfw (say, from before the last switch-over).
    await withAdmin(codfw, (admin) =>
      admin.setOffsets({ groupId: group, topic: mirrored, partitions: [{ partition: 0, offset: '0' }] }),
    );
  });

  after(async () => {
    await writeCheckpoints(checkpoints.map((c) => ({ ...c, minutes: null })));
    await withAdmin(codfw, (admin) => admin.deleteGroups([group]).catch(() => undefined));
    rmSync(dir, { recursive: true, force: true });
  });

  const failover = (...args: string[]) =>
    runTidings(
      '-o',
      'json',
      'failover',
      '--from',
      'eqiad',
      '--to',
      'codfw',
      '--margin',
      '1m',
      '--group',
      group,
      ...args,
    );

  test('the plan restarts every checkpointed partition of both prefixes at the first record at or after T and the others at their log start, changing nothing', async () => {
    const result = await failover();
    assert.equal(result.status, 0, result.stderr);
    const rows = JSON.parse(result.stdout) as Record<string, unknown>[];
    assert.deepEqual(
      new Map(rows.map((r) => [partitionKey(String(r.topic), Number(r.partition)), r.new])),
      expected,
    );
    assert.ok(rows.every((r) => r.group === group && r.restart_at === new Date(restartAt).toISOString()));
    const stale = rows.find((r) => r.topic === mirrored && r.partition === 0);
    assert.equal(stale?.current, 0);
    assert.equal(stale?.records, -Number(stale?.new));
    // None of this run's records at or after T is skipped (others' records may come before them).
    for (const [topic, partition, minutes] of [
      [mirrored, 0, 8],
      [mirrored, 1, 7],
      [local, 0, 7],
    ] as const) {
      const next = Number(rows.find((r) => r.topic === topic && r.partition === partition)?.new);
      assert.ok(
        next <= myOffsets.get(keyOf(topic, partition, minutes))!,
        `${topic}:${partition} restarts at ${next}`,
      );
    }
    // 3 checkpoints counted, none caught up, none retired, the earliest 7 minutes ago.
    assert.match(result.stderr, new RegExp(`${group}\\s+3\\s+0\\s+0\\s+${new Date(ago(7)).toISOString()}`));
    assert.match(result.stderr, /plan only: nothing changed/);
    assert.deepEqual(await committedOn(codfw, group), new Map([[partitionKey(mirrored, 0), 0]]));
  });

  test('--execute sets the offsets on codfw after writing a rollback file that replay --from-file applies', async () => {
    const rollback = join(dir, 'rollback.json');
    const result = await failover('--execute', '--rollback-file', rollback);
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(await committedOn(codfw, group), expected);
    const file = JSON.parse(readFileSync(rollback, 'utf8'));
    assert.equal(file.group, group);
    assert.deepEqual(
      file.partitions.filter((p: { offset: number | null }) => p.offset !== null),
      [{ topic: mirrored, partition: 0, offset: 0 }],
    );
    const restore = await runTidings('--dc', 'codfw', 'replay', '--from-file', rollback, '--execute');
    assert.equal(restore.status, 0, restore.stderr);
    assert.equal((await committedOn(codfw, group)).get(partitionKey(mirrored, 0)), 0);
  });

  test('--execute refuses while the group has a member on codfw, naming it, and moves nothing', async () => {
    const before = await committedOn(codfw, group);
    const consumer: Consumer = codfw.consumer({ groupId: group, maxWaitTimeInMs: 100 });
    await consumer.connect();
    try {
      await consumer.subscribe({ topic: local });
      await consumer.run({ autoCommit: false, eachMessage: async () => {} });
      await eventually(
        () =>
          withAdmin(codfw, async (admin) => {
            const { groups } = await admin.describeGroups([group]);
            return groups[0]?.state === 'Stable' ? true : undefined;
          }),
        `${group} stable on codfw`,
      );
      const result = await failover('--execute', '--rollback-file', join(dir, 'refused.json'));
      assert.equal(result.status, 1, result.stderr);
      assert.match(
        result.stderr,
        new RegExp(`group ${group} has 1 active member\\(s\\): .*client tidings-test`),
      );
      assert.deepEqual(await committedOn(codfw, group), before);
    } finally {
      await consumer.disconnect();
    }
  });

  test('a group without checkpoints is refused with what is missing', async () => {
    const result = await runTidings(
      'failover',
      '--from',
      'eqiad',
      '--to',
      'codfw',
      '--group',
      `${group}-none`,
      '--execute',
    );
    assert.equal(result.status, 1);
    assert.match(
      result.stderr,
      new RegExp(`no checkpoints from eqiad on codfw for group\\(s\\) ${group}-none`),
    );
    assert.match(result.stderr, /is MirrorMaker copying eqiad\.notify\.checkpoint\?/);
  });

  test('a lost datacenter without a checkpoint topic on the surviving cluster is a clear error', async () => {
    const result = await runTidings('failover', '--from', `x${run}`, '--to', 'codfw');
    assert.equal(result.status, 1);
    assert.match(result.stderr, new RegExp(`no checkpoint topic x${run}\\.notify\\.checkpoint on codfw`));
  });
});
