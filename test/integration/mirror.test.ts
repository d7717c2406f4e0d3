/**
 * MirrorMaker 2 between the local eqiad and codfw clusters (`make up`): each DC's topics reach the
 * other cluster under the same name, with the partition, timestamp, key, value and headers a
 * timestamp-based failover relies on, and a copy is never copied back.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { Admin, IHeaders, Kafka } from 'kafkajs';
import { createKafka, createProducer, DURABLE_SEND } from '../../libs/kafka/client.ts';
import { createTopicsWithLeaders } from '../../libs/kafka/topic-admin.ts';
import { BROKERS } from './harness.ts';

type Dc = 'eqiad' | 'codfw';

const PARTITIONS = 3;
const RECORDS_PER_PARTITION = 2;
// MirrorMaker looks for new topics every 5 s locally; a minute leaves room for a slow machine.
const MIRROR_DEADLINE_MS = 60_000;

interface MirroredRecord {
  partition: number;
  key: string;
  value: string;
  timestamp: string;
  headers: Record<string, string>;
}

const runId = randomUUID().slice(0, 8);
const topics: Record<Dc, string> = {
  eqiad: `eqiad.test-mirror-${runId}`,
  codfw: `codfw.test-mirror-${runId}`,
};
const kafka: Record<Dc, Kafka> = {
  eqiad: createKafka({ clientId: 'test-mirror', brokers: BROKERS.eqiad }),
  codfw: createKafka({ clientId: 'test-mirror', brokers: BROKERS.codfw }),
};
const admins = {} as Record<Dc, Admin>;
const produced = {} as Record<Dc, MirroredRecord[]>;

/** Records two days old, so a copy stamped with the time it was mirrored would stand out. */
function recordsFrom(dc: Dc): MirroredRecord[] {
  const twoDaysAgo = Math.floor(Date.now() / 1000) * 1000 - 2 * 24 * 3600 * 1000;
  const records: MirroredRecord[] = [];
  for (let partition = 0; partition < PARTITIONS; partition++) {
    for (let i = 0; i < RECORDS_PER_PARTITION; i++) {
      const n = partition * RECORDS_PER_PARTITION + i;
      records.push({
        partition,
        key: `key-${dc}-${n}`,
        value: JSON.stringify({ dc, n }),
        timestamp: String(twoDaysAgo + n * 1000),
        headers: { 'origin-dc': dc, 'request-id': randomUUID() },
      });
    }
  }
  return records;
}

async function produce(dc: Dc, records: MirroredRecord[]): Promise<void> {
  const producer = createProducer(kafka[dc]);
  await producer.connect();
  try {
    await producer.send({ topic: topics[dc], messages: records, ...DURABLE_SEND });
  } finally {
    await producer.disconnect();
  }
}

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + MIRROR_DEADLINE_MS;
  for (;;) {
    const result = await probe();
    if (result !== undefined) return result;
    if (Date.now() > deadline) throw new Error(`gave up after ${MIRROR_DEADLINE_MS} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

function headerStrings(headers: IHeaders | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(headers ?? {}).map(([name, value]) => [name, String(value)]));
}

/** Reads `topic` on `dc` from the beginning until every key in `keys` has arrived. */
async function readUntilKeys(dc: Dc, topic: string, keys: Set<string>): Promise<MirroredRecord[]> {
  const groupId = `test-mirror-${randomUUID()}`;
  const consumer = kafka[dc].consumer({ groupId });
  const received: MirroredRecord[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        received.push({
          partition,
          key: message.key?.toString() ?? '',
          value: message.value?.toString() ?? '',
          timestamp: message.timestamp,
          headers: headerStrings(message.headers),
        });
      },
    });
    await until(`${keys.size} records of ${topic} on ${dc}`, async () =>
      [...keys].every((key) => received.some((r) => r.key === key)) ? true : undefined,
    );
    return received;
  } finally {
    await consumer.disconnect();
    await admins[dc].deleteGroups([groupId]).catch(() => undefined);
  }
}

/**
 * MirrorMaker copies at least once: a task restarted before it committed its position copies a few
 * records again. What matters is that every record is there, in its partition and in order.
 */
function firstOfEachKey(records: MirroredRecord[]): MirroredRecord[] {
  const seen = new Set<string>();
  return records.filter((r) => {
    if (seen.has(r.key)) return false;
    seen.add(r.key);
    return true;
  });
}

function byPartition(records: MirroredRecord[]): MirroredRecord[][] {
  return Array.from({ length: PARTITIONS }, (_, p) => records.filter((r) => r.partition === p));
}

async function assertMirrored(from: Dc, to: Dc): Promise<void> {
  const topic = topics[from];
  await createTopicsWithLeaders(admins[from], [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }]);
  produced[from] = recordsFrom(from);
  // Produced before MirrorMaker has seen the topic: it must copy new topics from their beginning.
  await produce(from, produced[from]);

  await until(`${topic} to appear on ${to}`, async () =>
    (await admins[to].listTopics()).includes(topic) ? true : undefined,
  );
  const metadata = await admins[to].fetchTopicMetadata({ topics: [topic] });
  assert.equal(metadata.topics[0]?.partitions.length, PARTITIONS, 'the copy has as many partitions');

  const keys = new Set(produced[from].map((r) => r.key));
  const copies = firstOfEachKey(await readUntilKeys(to, topic, keys));
  assert.deepEqual(byPartition(copies), byPartition(produced[from]));
}

async function assertHoldsOnly(dc: Dc, records: MirroredRecord[]): Promise<void> {
  const offsets = await admins[dc].fetchTopicOffsets(topics[dc]);
  const counts = [...offsets]
    .sort((a, b) => a.partition - b.partition)
    .map((o) => Number(o.high) - Number(o.low));
  assert.deepEqual(
    counts,
    byPartition(records).map((p) => p.length),
    `${topics[dc]} on ${dc} holds only what was produced there`,
  );
}

async function deleteTopics(dc: Dc, names: string[]): Promise<void> {
  const existing = new Set(await admins[dc].listTopics());
  const present = names.filter((name) => existing.has(name));
  if (present.length > 0) await admins[dc].deleteTopics({ topics: present });
}

describe('MirrorMaker 2 between eqiad and codfw', () => {
  before(async () => {
    for (const dc of ['eqiad', 'codfw'] as const) {
      admins[dc] = kafka[dc].admin();
      await admins[dc].connect();
    }
  });

  after(async () => {
    // Origins first: a copy deleted while its origin still exists would be created again.
    await deleteTopics('eqiad', [topics.eqiad]);
    await deleteTopics('codfw', [topics.codfw]);
    await deleteTopics('eqiad', [topics.codfw]);
    await deleteTopics('codfw', [topics.eqiad]);
    await Promise.all(Object.values(admins).map((admin) => admin.disconnect()));
  });

  test('eqiad.* records reach codfw with their partition, timestamp, key, value and headers', async () => {
    await assertMirrored('eqiad', 'codfw');
  });

  // Its topic is created after eqiad's copy exists on codfw, so by the time it has crossed, the
  // codfw->eqiad flow has listed codfw's topics including that copy.
  test('codfw.* records reach eqiad with their partition, timestamp, key, value and headers', async () => {
    await assertMirrored('codfw', 'eqiad');
  });

  test('a mirrored copy is not mirrored back to where it came from', async () => {
    assert.ok(produced.eqiad && produced.codfw, 'runs after both directions were mirrored');
    await assertHoldsOnly('eqiad', produced.eqiad);
    await assertHoldsOnly('codfw', produced.codfw);
  });
});
