/**
 * The operations commands (lag, replay, drop, tail, dlq) run as a child process against the real
 * eqiad cluster, on topics under a private datacenter prefix.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Consumer, Kafka } from 'kafkajs';
import { Registry } from 'prom-client';
import { createProducer, DURABLE_SEND } from '../../libs/kafka/client.ts';
import { startLagExporter } from '../../libs/kafka/lag-exporter.ts';
import { HEADER } from '../../libs/kafka/record-headers.ts';
import { createTopicsWithLeaders } from '../../libs/kafka/topic-admin.ts';
import { dlqTopic, topicFor } from '../../libs/kafka/topics.ts';
import {
  BROKERS,
  type CliRun,
  deleteDcTopics,
  eventually,
  readTopic,
  runTidings,
  testKafka,
  testPublisher,
  uniqueDc,
  withAdmin,
} from './harness.ts';

const HOUR = 3_600_000;

const tidings = (...args: string[]) => runTidings('--brokers', BROKERS.eqiad.join(','), ...args);

async function json(...args: string[]): Promise<{ run: CliRun; rows: Record<string, unknown>[] }> {
  const run = await tidings('-o', 'json', ...args);
  return { run, rows: run.stdout.trim() ? JSON.parse(run.stdout) : [] };
}

async function committed(kafka: Kafka, group: string, topic: string): Promise<number> {
  return withAdmin(kafka, async (admin) => {
    const [t] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    return Number(t?.partitions.find((p) => p.partition === 0)?.offset ?? -1);
  });
}

/** Consumes `topic` as `group` until it has committed `upTo` on partition 0; returns the live consumer. */
async function consumeUpTo(kafka: Kafka, group: string, topic: string, upTo: number): Promise<Consumer> {
  const consumer = kafka.consumer({ groupId: group, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({ eachMessage: async () => {} });
  await eventually(
    async () => ((await committed(kafka, group, topic)) >= upTo ? true : undefined),
    `${group} at ${upTo}`,
  );
  return consumer;
}

describe('tidings operations commands', () => {
  const kafka = testKafka();
  const dc = uniqueDc();
  const event = topicFor(dc, 'notify.event');
  const user = topicFor(dc, 'notify.user');
  const dir = mkdtempSync(join(tmpdir(), 'tidings-ops-'));
  const stopped = `${dc}-stopped`;
  const live = `${dc}-live`;
  let liveConsumer: Consumer | undefined;

  before(async () => {
    await withAdmin(kafka, (admin) =>
      createTopicsWithLeaders(admin, [
        { topic: event, numPartitions: 1 },
        { topic: user, numPartitions: 1, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] },
      ]),
    );
    const producer = createProducer(kafka);
    await producer.connect();
    const now = Date.now();
    // Offsets 0-4 three hours old, 5-9 one hour old.
    await producer.send({
      topic: event,
      ...DURABLE_SEND,
      messages: Array.from({ length: 10 }, (_, i) => ({
        key: `k${i}`,
        value: `v${i}`,
        timestamp: String(now - (i < 5 ? 3 : 1) * HOUR),
      })),
    });
    await (await consumeUpTo(kafka, stopped, event, 10)).disconnect();
    liveConsumer = await consumeUpTo(kafka, live, event, 10);
    // The stopped group now lags 3 records behind; the live one catches up.
    await producer.send({
      topic: event,
      ...DURABLE_SEND,
      messages: [0, 1, 2].map((i) => ({ key: `n${i}`, value: `n${i}`, timestamp: String(now - 60_000) })),
    });
    await producer.disconnect();
    await eventually(
      async () => ((await committed(kafka, live, event)) >= 13 ? true : undefined),
      'live at 13',
    );
  });

  after(async () => {
    await liveConsumer?.disconnect();
    await deleteDcTopics(kafka, dc);
    await withAdmin(kafka, (admin) => admin.deleteGroups([stopped, live]).catch(() => undefined));
    rmSync(dir, { recursive: true, force: true });
  });

  test('lag: a stopped group with lag is ERR/STOP (exit 2) with its lag in records and seconds', async () => {
    const { run, rows } = await json('lag', '--group', stopped, '--samples', '1');
    assert.equal(run.status, 2, run.stderr);
    assert.deepEqual(
      rows.map((r) => [
        r.topic,
        r.partition,
        r['current-offset'],
        r['log-end-offset'],
        r.lag,
        r.status,
        r['group-status'],
      ]),
      [[event, 0, 10, 13, 3, 'STOP', 'ERR']],
    );
    // The oldest unprocessed record (offset 10) was written a minute ago.
    const seconds = rows[0]?.['lag-seconds'] as number;
    assert.ok(seconds >= 60 && seconds < 600, `lag-seconds ${seconds}`);
  });

  test('lag: a live group that caught up is OK (exit 0) and names its consumer; the table has the usual columns', async () => {
    const { run, rows } = await json('lag', '--group', live, '--samples', '2', '--interval', '200ms');
    assert.equal(run.status, 0, run.stderr);
    assert.equal(rows[0]?.status, 'OK');
    assert.equal(rows[0]?.lag, 0);
    assert.match(String(rows[0]?.['consumer-id']), /^tidings-test-/);
    const table = await tidings('lag', '--group', live, '--samples', '1');
    assert.match(
      table.stdout.split('\n')[0] ?? '',
      /^GROUP +TOPIC +PARTITION +CURRENT-OFFSET +LOG-END-OFFSET +LAG +LAG-SECONDS +CONSUMER-ID +HOST +CLIENT-ID +STATUS +GROUP-STATUS$/,
    );
  });

  test('replay refuses while the group has members, naming them', async () => {
    const run = await tidings('replay', '--group', live, '--since', '2h', '--execute');
    assert.equal(run.status, 1);
    assert.match(
      run.stderr,
      /has 1 active member\(s\): tidings-test-\S+ \(client tidings-test on \/127\.0\.0\.1\)/,
    );
    assert.equal(await committed(kafka, live, event), 13);
  });

  test('replay refuses a time without a zone', async () => {
    const run = await tidings('replay', '--group', stopped, '--since', '2026-11-21T10:00:00');
    assert.equal(run.status, 2);
    assert.match(run.stderr, /no time zone: add Z for UTC or an offset like \+01:00/);
  });

  test('replay plans without changing anything, --execute moves back and writes the rollback file, --from-file restores', async () => {
    const plan = await json('replay', '--group', stopped, '--since', '2h');
    assert.equal(plan.run.status, 0, plan.run.stderr);
    assert.deepEqual(
      plan.rows.map((r) => [r.partition, r.current, r.new, r.records, r.action]),
      [[0, 10, 5, 5, 'plan']],
    );
    assert.equal(await committed(kafka, stopped, event), 10);

    const rollback = join(dir, 'rollback.json');
    const applied = await json(
      'replay',
      '--group',
      stopped,
      '--since',
      '2h',
      '--execute',
      '--rollback-file',
      rollback,
    );
    assert.equal(applied.run.status, 0, applied.run.stderr);
    assert.equal(await committed(kafka, stopped, event), 5);
    assert.deepEqual(JSON.parse(readFileSync(rollback, 'utf8')).partitions, [
      { topic: event, partition: 0, offset: 10 },
    ]);

    const restored = await json('replay', '--from-file', rollback, '--execute');
    assert.equal(restored.run.status, 0, restored.run.stderr);
    assert.deepEqual(
      restored.rows.map((r) => [r.current, r.new]),
      [[5, 10]],
    );
    assert.equal(await committed(kafka, stopped, event), 10);
  });

  test('drop --to-latest skips what the group has not processed', async () => {
    const plan = await json('drop', '--group', stopped, '--to-latest');
    assert.deepEqual(
      plan.rows.map((r) => [r.current, r.new, r.records]),
      [[10, 13, -3]],
    );
    assert.equal(await committed(kafka, stopped, event), 10);
    const run = await tidings(
      'drop',
      '--group',
      stopped,
      '--to-latest',
      '--execute',
      '--rollback-file',
      join(dir, 'drop.json'),
    );
    assert.equal(run.status, 0, run.stderr);
    assert.equal(await committed(kafka, stopped, event), 13);
  });

  test('drop deletes records before an offset, and refuses a compacted topic', async () => {
    const plan = await json('drop', '--topic', event, '--before-offset', '4', '--partition', '0');
    assert.deepEqual(
      plan.rows.map((r) => [r.low, r['new-low'], r.records, r.action]),
      [[0, 4, 4, 'plan']],
    );
    const run = await tidings(
      'drop',
      '--topic',
      event,
      '--before-offset',
      '4',
      '--partition',
      '0',
      '--execute',
    );
    assert.equal(run.status, 0, run.stderr);
    const [bounds] = await withAdmin(kafka, (admin) => admin.fetchTopicOffsets(event));
    assert.equal(bounds?.low, '4');

    const refused = await tidings(
      'drop',
      '--topic',
      user,
      '--before-offset',
      '1',
      '--partition',
      '0',
      '--execute',
    );
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /is compacted \(cleanup\.policy=compact\)/);
  });

  test('tail prints decoded records, and an undecodable one with its error', async () => {
    const since = new Date(Date.now() - 1000).toISOString();
    const publisher = testPublisher(dc, 'ops-test');
    try {
      for (const id of ['e1', 'e2']) {
        await publisher.publish('notify.event', {
          event_id: `${dc}-${id}`,
          type: 'edit-user-talk',
          category: 'edit-user-talk',
          recipients: ['u1'],
          title: 'Hello',
        });
      }
    } finally {
      await publisher.close();
    }
    const producer = createProducer(kafka);
    await producer.connect();
    await producer.send({ topic: event, ...DURABLE_SEND, messages: [{ key: 'bad', value: 'not avro' }] });
    await producer.disconnect();

    const run = await tidings(
      '-o',
      'json',
      '--dc',
      dc,
      'tail',
      'notify.event',
      '--from',
      since,
      '--limit',
      '50',
    );
    assert.equal(run.status, 0, run.stderr);
    const rows = run.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line))
      .filter((r) => r.topic === event);
    assert.deepEqual(
      rows.map((r) => [r.value?.event_id ?? null, r.error === null ? null : 'error']),
      [
        [`${dc}-e1`, null],
        [`${dc}-e2`, null],
        [null, 'error'],
      ],
    );
    assert.equal(rows[2].key, 'bad');
  });

  test('dlq ls counts dead letters, show decodes their headers, replay re-publishes them to the stream', async () => {
    const dlq = dlqTopic(dc, 'notify.event', 'ops');
    await withAdmin(kafka, (admin) => createTopicsWithLeaders(admin, [{ topic: dlq, numPartitions: 1 }]));
    const producer = createProducer(kafka);
    await producer.connect();
    await producer.send({
      topic: dlq,
      ...DURABLE_SEND,
      messages: [1, 2].map((i) => ({
        key: `dead-${i}`,
        value: `payload-${i}`,
        headers: {
          origin: 'upstream',
          [HEADER.sourceTopic]: event,
          [HEADER.sourcePartition]: '0',
          [HEADER.sourceOffset]: String(100 + i),
          [HEADER.errorKind]: 'malformed',
          [HEADER.errorMessage]: 'SerdeError: no magic byte',
          [HEADER.attempt]: '3',
        },
      })),
    });
    await producer.disconnect();

    const ls = await json('--dc', dc, 'dlq', 'ls');
    assert.deepEqual(
      ls.rows.filter((r) => r.topic === dlq).map((r) => [r.dc, r.stream, r.service, r.records]),
      [[dc, 'notify.event', 'ops', 2]],
    );

    const show = await json('--dc', dc, 'dlq', 'show', 'notify.event', '--service', 'ops');
    assert.equal(show.run.status, 0, show.run.stderr);
    assert.deepEqual(
      show.rows.map((r) => [
        r.key,
        r.source_topic,
        r.source_partition,
        r.source_offset,
        r.error_kind,
        r.error_message,
        r.attempts,
      ]),
      [
        ['dead-1', event, 0, '101', 'malformed', 'SerdeError: no magic byte', 3],
        ['dead-2', event, 0, '102', 'malformed', 'SerdeError: no magic byte', 3],
      ],
    );

    const [before] = await withAdmin(kafka, (admin) => admin.fetchTopicOffsets(event));
    const plan = await json('--dc', dc, 'dlq', 'replay', 'notify.event', '--service', 'ops');
    assert.deepEqual(
      plan.rows.map((r) => [r.records, r.target, r.action]),
      [[2, event, 'plan']],
    );
    const replayed = await json('--dc', dc, 'dlq', 'replay', 'notify.event', '--service', 'ops', '--execute');
    assert.equal(replayed.run.status, 0, replayed.run.stderr);
    const republished = await readTopic(
      kafka,
      event,
      (m) => m.filter((x) => x.key?.toString().startsWith('dead-')).length >= 2,
    );
    const copies = republished.filter((m) => m.key?.toString().startsWith('dead-'));
    assert.deepEqual(
      copies.map((m) => [m.key?.toString(), m.value?.toString(), Object.keys(m.headers ?? {})]),
      [
        ['dead-1', 'payload-1', ['origin']],
        ['dead-2', 'payload-2', ['origin']],
      ],
    );
    assert.ok(Number(copies[0]?.offset) >= Number(before?.high), 'the copies are new records of the stream');
    const [dlqBounds] = await withAdmin(kafka, (admin) => admin.fetchTopicOffsets(dlq));
    assert.equal(dlqBounds?.low, dlqBounds?.high, 'replayed records are removed from the DLQ');
  });

  test('the lag exporter publishes kafka_consumergroup_lag for the groups a service owns', async () => {
    const registry = new Registry();
    const exporter = startLagExporter({ kafka, registry, groups: [stopped], intervalMs: 60_000 });
    try {
      await exporter.refresh();
      const [bounds] = await withAdmin(kafka, (admin) => admin.fetchTopicOffsets(event));
      const lag = Number(bounds?.high) - (await committed(kafka, stopped, event));
      assert.ok(lag > 0);
      const text = await registry.metrics();
      const labels = `consumergroup="${stopped}",topic="${event}",partition="0"`;
      assert.ok(text.includes(`kafka_consumergroup_lag{${labels}} ${lag}\n`), text);
      assert.match(text, new RegExp(`kafka_consumergroup_lag_seconds\\{${labels}\\} \\d`));
    } finally {
      await exporter.stop();
    }
  });
});
