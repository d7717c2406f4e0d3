/**
 * A service process against the real stack: killed before it commits, it sees its records again
 * (no loss); on SIGTERM it drains, commits and exits 0, so a restart duplicates nothing. The ops
 * endpoints answer while it runs.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createProducer } from '../../libs/kafka/client.ts';
import { topicFor } from '../../libs/kafka/topics.ts';
import { createSerde } from '../../libs/schemas/serde.ts';
import {
  createStreamTopics,
  deleteDcTopics,
  eventually,
  REGISTRY_URL,
  readTopic,
  relayTopics,
  type ServiceProcess,
  type SpawnOptions,
  spawnService,
  stopServices,
  testKafka,
  uniqueDc,
  withAdmin,
} from './harness.ts';

const kafka = testKafka('eqiad');
const serde = createSerde({ registryUrl: REGISTRY_URL });
const producer = createProducer(kafka);
const dcs: string[] = [];

before(() => producer.connect());
after(async () => {
  await stopServices('SIGKILL');
  await producer.disconnect();
  for (const dc of dcs) await deleteDcTopics(kafka, dc);
});

async function setup(records: number): Promise<string> {
  const dc = uniqueDc();
  dcs.push(dc);
  await createStreamTopics(kafka, dc, ['notify.event', 'notify.preference-change', 'notify.checkpoint'], 2);
  await relayTopics(kafka, dc);
  const messages = await Promise.all(
    Array.from({ length: records }, async (_, i) => ({
      key: `e${i}`,
      value: await serde.encode('notify.event', {
        meta: { id: randomUUID(), dt: Date.now(), stream: 'notify.event', dc, producer: 'test' },
        event_id: `e${i}`,
        type: 'test',
        category: 'test',
        recipients: ['u1'],
      }),
    })),
  );
  await producer.send({ topic: topicFor(dc, 'notify.event'), acks: -1, messages });
  return dc;
}

const RELAY = join(import.meta.dirname, 'fixtures', 'relay-service.ts');

function startRelay(
  dc: string,
  env: Record<string, string>,
  options: SpawnOptions = {},
): Promise<ServiceProcess> {
  return spawnService(
    RELAY,
    dc,
    {
      CHECKPOINT_INTERVAL: '500ms',
      // A killed member holds its partitions until its session expires; keep that short here.
      CONSUMER_SESSION_TIMEOUT: '6s',
      ...env,
    },
    options,
  );
}

async function outputs(dc: string, atLeast: number): Promise<string[]> {
  const messages = await readTopic(
    kafka,
    topicFor(dc, 'notify.preference-change'),
    (m) => m.length >= atLeast,
    60_000,
  );
  return Promise.all(
    messages.map(async (m) => (await serde.decode('notify.preference-change', m.value!)).user_id),
  );
}

/** Every record's output is durable before its offset commits: once all are committed, all are there. */
async function allCommitted(dc: string, records: number): Promise<void> {
  await eventually(
    async () => ((await committed(dc, 'relay')) === records ? true : undefined),
    'a full commit',
    60_000,
  );
}

async function endOffset(dc: string): Promise<number> {
  return withAdmin(kafka, async (admin) =>
    (await admin.fetchTopicOffsets(topicFor(dc, 'notify.preference-change'))).reduce(
      (n, p) => n + Number(p.high),
      0,
    ),
  );
}

async function committed(dc: string, group: string): Promise<number> {
  return withAdmin(kafka, async (admin) => {
    const [topic] = await admin.fetchOffsets({ groupId: group, topics: [topicFor(dc, 'notify.event')] });
    return (topic?.partitions ?? []).reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
  });
}

describe('a service process', () => {
  test('killed before it commits, it processes its records again after a restart: nothing is lost', async () => {
    const records = 200;
    const dc = await setup(records);
    const first = await startRelay(dc, { RELAY_DELAY: '25ms', CONSUMER_CONCURRENCY: '2' });
    const early = await outputs(dc, 10);
    await first.stop('SIGKILL');
    const committedAtKill = await committed(dc, 'relay');
    assert.ok(
      committedAtKill < records,
      `the kill came before everything was committed (${committedAtKill})`,
    );

    const second = await startRelay(dc, {});
    await allCommitted(dc, records);
    const all = await outputs(dc, await endOffset(dc));
    await second.stop('SIGTERM');

    const seen = new Set(all);
    for (let i = 0; i < records; i++) assert.ok(seen.has(`e${i}`), `e${i} reached the output`);
    const redelivered = early.filter((id) => all.filter((x) => x === id).length > 1);
    assert.ok(redelivered.length > 0, 'records handled but not committed before the kill were handled again');
  });

  test('an invalid configuration stops start-up with exit 2 and names every variable to fix', async () => {
    const relay = await startRelay(
      'eqiad',
      { HTTP_PORT: 'abc', TIDINGS_DCS: 'codfw', RETRY_DELAYS: '1s,soon' },
      { capture: true },
    );
    const code = await relay.exited;
    const stderr = relay.output();
    assert.equal(code, 2);
    assert.match(stderr, /HTTP_PORT/);
    assert.match(stderr, /RETRY_DELAYS/);
    assert.match(stderr, /TIDINGS_DCS/);
  });

  test('SIGTERM drains in-flight work, commits, exits 0; the restart duplicates nothing', async () => {
    const records = 300;
    const dc = await setup(records);
    const first = await startRelay(dc, { RELAY_DELAY: '10ms', CONSUMER_CONCURRENCY: '4' });

    const health = await eventually(async () => {
      const res = await fetch(`http://127.0.0.1:${first.port}/readyz`).catch(() => undefined);
      return res?.status === 200 ? res : undefined;
    }, 'the relay to be ready');
    assert.equal(health.status, 200);
    const info = (await (await fetch(`http://127.0.0.1:${first.port}/_info`)).json()) as {
      name: string;
      dc: string;
    };
    assert.deepEqual([info.name, info.dc], ['relay', dc]);
    assert.match(
      await (await fetch(`http://127.0.0.1:${first.port}/metrics`)).text(),
      /tidings_consumer_records_total/,
    );

    await outputs(dc, 20);
    first.child.kill('SIGTERM');
    const code = await first.exited;
    assert.equal(code, 0, 'a clean shutdown exits 0');
    const committedAtStop = await committed(dc, 'relay');
    assert.ok(committedAtStop < records, 'it stopped mid-stream rather than finishing the topic');

    const second = await startRelay(dc, {});
    await allCommitted(dc, records);
    const all = await outputs(dc, await endOffset(dc));
    await second.stop('SIGTERM');

    assert.equal(all.length, records, 'every record was emitted exactly once across the restart');
    assert.equal(new Set(all).size, records);
  });
});
