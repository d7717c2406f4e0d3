/**
 * Schemas, serde, publisher and the schema/topic CLI against the real registry and the real
 * eqiad broker: registration is idempotent, checks catch an incompatible change, a published
 * record round-trips through Kafka, bad records are refused before sending, undecodable bytes
 * are classified for the DLQ, and records written with an older schema read as the current one.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import kafkajs from 'kafkajs';
import {
  applyTopicPlan,
  desiredTopics,
  LOCAL_MAX_PARTITIONS,
  planTopic,
  readTopics,
  TOPIC_PLAN,
} from '../../libs/kafka/topic-plan.ts';
import { topicFor } from '../../libs/kafka/topics.ts';
import { PublishValidationError } from '../../libs/publish/publish.ts';
import {
  type AvroSchemaObject,
  avroType,
  SCHEMAS_DIR,
  type StreamName,
  streamSchema,
} from '../../libs/schemas/catalog.ts';
import { checkAll, registerAll } from '../../libs/schemas/registry-admin.ts';
import { createRegistryClient } from '../../libs/schemas/registry-client.ts';
import { createSerde, SerdeError } from '../../libs/schemas/serde.ts';
import type { NotifyEvent } from '../../libs/schemas/types.generated.ts';
import {
  BROKERS,
  deleteDcTopics,
  eventually,
  REGISTRY_URL,
  readTopic,
  runTidings,
  testKafka,
  testPublisher,
  uniqueDc,
  withAdmin,
} from './harness.ts';

const { ConfigResourceTypes } = kafkajs;
const kafka = testKafka('eqiad');
const registry = createRegistryClient(REGISTRY_URL);
const serde = createSerde({ registryUrl: REGISTRY_URL });
const runId = randomBytes(4).toString('hex');
const throwaway = (stream: StreamName) => `test-${runId}-${stream}-value`;
const dcs: string[] = [];
const subjects: string[] = [];
const dirs: string[] = [];

after(async () => {
  for (const dc of dcs) await deleteDcTopics(kafka, dc);
  for (const subject of subjects) await registry.deleteSubject(subject);
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A test datacenter whose topics for `streams` exist, created the way `tidings topics apply` does. */
async function newDc(streams: readonly StreamName[]): Promise<string> {
  const dc = uniqueDc();
  dcs.push(dc);
  const desired = desiredTopics([dc], 1, TOPIC_PLAN, LOCAL_MAX_PARTITIONS).filter((t) =>
    (streams as readonly string[]).includes(t.stream),
  );
  await withAdmin(kafka, async (admin) =>
    applyTopicPlan(
      admin,
      desired,
      await readTopics(
        admin,
        desired.map((d) => d.topic),
      ),
    ),
  );
  return dc;
}

/** A copy of schemas/ with notify.event changed by `change`, for checking a candidate schema. */
function candidateSchemas(change: (schema: AvroSchemaObject) => AvroSchemaObject): string {
  const dir = mkdtempSync(join(tmpdir(), 'tidings-schemas-'));
  dirs.push(dir);
  cpSync(SCHEMAS_DIR, dir, { recursive: true });
  const file = join(dir, 'notify.event.avsc');
  writeFileSync(file, JSON.stringify(change(JSON.parse(readFileSync(file, 'utf8')))));
  return dir;
}

const withRequiredField = (schema: AvroSchemaObject): AvroSchemaObject => ({
  ...schema,
  fields: [...(schema.fields as object[]), { name: 'severity', type: 'int', doc: 'New, without a default.' }],
});

async function endOffset(topic: string): Promise<number> {
  // Right after a topic is created the broker may still answer NOT_LEADER_FOR_PARTITION for a
  // moment; KafkaJS does not retry that for offset requests.
  return eventually(
    () =>
      withAdmin(kafka, async (admin) =>
        (await admin.fetchTopicOffsets(topic)).reduce((sum, p) => sum + Number(p.high), 0),
      ).catch((error: { retriable?: boolean }) => {
        if (error.retriable) return undefined;
        throw error;
      }),
    `end offsets of ${topic}`,
  );
}

describe('schema registration', () => {
  test('register is idempotent: a second run changes nothing and keeps every id', async () => {
    const first = await registerAll(REGISTRY_URL);
    assert.ok(
      first.every((r) => r.status === 'created' || r.status === 'unchanged'),
      JSON.stringify(first),
    );
    const second = await registerAll(REGISTRY_URL);
    assert.deepEqual(
      second.map((r) => [r.subject, r.status, r.id]),
      first.map((r) => [r.subject, 'unchanged', r.id]),
    );
  });

  test('check passes for our schemas', async () => {
    await registerAll(REGISTRY_URL);
    const results = await checkAll(REGISTRY_URL);
    assert.deepEqual(
      results.filter((r) => r.status !== 'compatible'),
      [],
    );
    const run = await runTidings('schemas', 'check');
    assert.equal(run.status, 0, run.stdout + run.stderr);
  });

  test('check reports a new required field without default as incompatible, naming it', async () => {
    const subject = throwaway('notify.event');
    subjects.push(subject);
    await registerAll(registry, { streams: ['notify.event'], subject: throwaway });
    const [result] = await checkAll(registry, {
      streams: ['notify.event'],
      subject: throwaway,
      schemasDir: candidateSchemas(withRequiredField),
    });
    assert.equal(result?.status, 'incompatible');
    assert.match(result.messages.join('\n'), /severity/);

    const [rejected] = await registerAll(registry, {
      streams: ['notify.event'],
      subject: throwaway,
      schemasDir: candidateSchemas(withRequiredField),
    });
    assert.equal(rejected?.status, 'rejected', 'the registry refuses to register it too');
  });

  test('a subject that does not exist yet is reported as new', async () => {
    const [result] = await checkAll(registry, { streams: ['notify.user'], subject: throwaway });
    assert.equal(result?.status, 'new');
  });

  test('`tidings schemas check` exits 1 for an incompatible candidate and names the stream', async () => {
    const dir = candidateSchemas(withRequiredField);
    const run = await runTidings(
      '-o',
      'json',
      'schemas',
      'check',
      '--stream',
      'notify.event',
      '--schemas-dir',
      dir,
    );
    assert.equal(run.status, 1, run.stderr);
    const [row] = JSON.parse(run.stdout) as { stream: string; status: string }[];
    assert.deepEqual([row?.stream, row?.status], ['notify.event', 'incompatible']);
  });
});

describe('publisher and serde', () => {
  test('a published record round-trips through Kafka and decodes equal, with meta filled in', async () => {
    const dc = await newDc(['notify.event']);
    const publisher = testPublisher(dc, 'test-app');
    try {
      const sent = await publisher.publish(
        'notify.event',
        {
          event_id: `ev-${runId}`,
          type: 'edit-user-talk',
          category: 'edit-user-talk',
          agent: { id: 'u2', name: 'Someone' },
          recipients: ['u1', 'u3'],
          title: 'Hello',
          extra: { section: 'Greetings' },
          meta: { request_id: 'req-1', dt: 1_700_000_000_000 },
        },
        { headers: { origin: 'test' } },
      );
      assert.equal(sent.topic, topicFor(dc, 'notify.event'));
      assert.equal(sent.key, `ev-${runId}`);

      const [message] = await readTopic(kafka, sent.topic, (ms) => ms.length >= 1);
      assert.equal(message?.offset, sent.offset);
      assert.equal(message?.key?.toString(), sent.key);
      assert.equal(message?.headers?.origin?.toString(), 'test');
      const decoded = await serde.decode('notify.event', message!.value!);
      const expected: NotifyEvent = {
        meta: {
          id: decoded.meta.id,
          dt: 1_700_000_000_000,
          stream: 'notify.event',
          dc,
          producer: 'test-app',
          request_id: 'req-1',
        },
        event_id: `ev-${runId}`,
        type: 'edit-user-talk',
        category: 'edit-user-talk',
        agent: { id: 'u2', name: 'Someone' },
        recipients: ['u1', 'u3'],
        title: 'Hello',
        url: null,
        extra: { section: 'Greetings' },
        bundle_key: null,
        expires_at: null,
      };
      assert.deepStrictEqual(decoded, expected);
      assert.match(decoded.meta.id, /^[0-9a-f-]{36}$/);
    } finally {
      await publisher.close();
    }
  });

  test('an invalid record is refused at publish, naming the field, and nothing is sent', async () => {
    const dc = await newDc(['notify.event']);
    const publisher = testPublisher(dc, 'test-app');
    try {
      const bad = { event_id: 'e', type: 't', category: 'c', recipients: ['u1', 42] } as never;
      await assert.rejects(publisher.publish('notify.event', bad), (error: unknown) => {
        assert.ok(error instanceof PublishValidationError);
        assert.match(error.message, /recipients\[1\]: expected string, got number 42/);
        return true;
      });
      assert.equal(await endOffset(topicFor(dc, 'notify.event')), 0);
    } finally {
      await publisher.close();
    }
  });

  test('a tombstone on a compacted stream is a null value under the key', async () => {
    const dc = await newDc(['notify.user']);
    const publisher = testPublisher(dc, 'test-app');
    try {
      await publisher.publish('notify.user', { user_id: 'u9', email: 'u9@example.org' });
      await publisher.tombstone('notify.user', 'u9');
      const messages = await readTopic(kafka, topicFor(dc, 'notify.user'), (ms) => ms.length >= 2);
      assert.deepEqual(
        messages.map((m) => [m.key?.toString(), m.value === null]),
        [
          ['u9', false],
          ['u9', true],
        ],
      );
      await assert.rejects(publisher.tombstone('notify.event', 'e1'), /not a compacted stream/);
    } finally {
      await publisher.close();
    }
  });

  test('`tidings publish` sends a record file and prints where it went', async () => {
    const dc = await newDc(['notify.preference-change']);
    const dir = mkdtempSync(join(tmpdir(), 'tidings-publish-'));
    dirs.push(dir);
    const file = join(dir, 'change.json');
    writeFileSync(
      file,
      JSON.stringify({ user_id: 'u5', channel: 'email', enabled: false, reason: 'one-click-unsubscribe' }),
    );
    const run = await runTidings(
      '--dc',
      dc,
      '--brokers',
      BROKERS.eqiad.join(','),
      '-o',
      'json',
      'publish',
      'notify.preference-change',
      '--file',
      file,
    );
    assert.equal(run.status, 0, run.stderr);
    const [row] = JSON.parse(run.stdout) as { topic: string; key: string; offset: string }[];
    assert.deepEqual(
      [row?.topic, row?.key, row?.offset],
      [topicFor(dc, 'notify.preference-change'), 'u5', '0'],
    );
  });

  test('bytes that are not Avro in the wire format are malformed', async () => {
    await assert.rejects(
      serde.decode('notify.event', Buffer.from('this is not avro at all')),
      (error: unknown) => error instanceof SerdeError && error.kind === 'malformed',
    );
  });

  test('a well-formed header with an id the registry never issued is unknown-schema', async () => {
    const bytes = Buffer.concat([Buffer.from([0, 0x7f, 0xff, 0xff, 0xf0]), Buffer.from('whatever')]);
    await assert.rejects(
      serde.decode('notify.event', bytes),
      (error: unknown) => error instanceof SerdeError && error.kind === 'unknown-schema',
    );
  });

  test('a record written with an older schema (fewer fields) decodes into the current one with defaults', async () => {
    const current = streamSchema('notify.event').json as AvroSchemaObject;
    const older: AvroSchemaObject = {
      ...current,
      doc: `An older notify.event (test ${runId}).`,
      fields: (current.fields as { name: string }[]).filter(
        (f) => !['bundle_key', 'expires_at', 'extra'].includes(f.name),
      ),
    };
    const subject = `test-${runId}-older-notify.event-value`;
    subjects.push(subject);
    const olderId = await registry.register(subject, JSON.stringify(older));
    const record = {
      meta: {
        id: 'f9d8a4c6-2a49-4c2e-9d0c-6f1f0f3e0a11',
        dt: 5,
        stream: 'notify.event',
        dc: 'eqiad',
        producer: 'old-app',
        request_id: null,
      },
      event_id: 'old-1',
      type: 'welcome',
      category: 'system',
      agent: null,
      recipients: ['u1'],
      title: null,
      url: null,
    };
    const header = Buffer.alloc(5);
    header.writeUInt32BE(olderId, 1);
    const decoded = await serde.decode(
      'notify.event',
      Buffer.concat([header, avroType(older).toBuffer(record)]),
    );
    assert.deepStrictEqual(decoded, { ...record, extra: {}, bundle_key: null, expires_at: null });
  });
});

describe('topics', () => {
  test('apply creates the declared topics and fixes a drifted config; plan then says ok', async () => {
    const dc = await newDc(['notify.user', 'notify.event']);
    const desired = desiredTopics([dc], 1, TOPIC_PLAN, LOCAL_MAX_PARTITIONS).filter(
      (t) => t.stream === 'notify.user' || t.stream === 'notify.event',
    );
    const read = () =>
      withAdmin(kafka, (admin) =>
        readTopics(
          admin,
          desired.map((d) => d.topic),
        ),
      );
    let existing = await read();
    assert.equal(existing.get(topicFor(dc, 'notify.user'))?.config['cleanup.policy'], 'compact');
    assert.equal(existing.get(topicFor(dc, 'notify.event'))?.partitions, 6);

    await withAdmin(kafka, (admin) =>
      admin.alterConfigs({
        validateOnly: false,
        resources: [
          {
            type: ConfigResourceTypes.TOPIC,
            name: topicFor(dc, 'notify.user'),
            configEntries: [
              { name: 'cleanup.policy', value: 'delete' },
              { name: 'segment.ms', value: '3600000' },
            ],
          },
        ],
      }),
    );
    existing = await read();
    const drifted = desired.map((d) => planTopic(d, existing.get(d.topic)));
    assert.deepEqual(
      drifted.map((c) => c.action),
      desired.map((d) => (d.stream === 'notify.user' ? 'alter' : 'ok')),
    );

    await withAdmin(kafka, async (admin) =>
      applyTopicPlan(
        admin,
        desired,
        await readTopics(
          admin,
          desired.map((d) => d.topic),
        ),
      ),
    );
    existing = await read();
    assert.deepEqual(
      desired.map((d) => planTopic(d, existing.get(d.topic)).action),
      desired.map(() => 'ok'),
    );
    assert.equal(
      existing.get(topicFor(dc, 'notify.user'))?.overrides['segment.ms'],
      '3600000',
      'other overrides are kept',
    );
  });
});
