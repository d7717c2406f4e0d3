/**
 * The inbox process (services/inbox/main.ts) in a datacenter and a Postgres schema of its own.
 *
 * Storing: BENCH_INBOX_NOTIFICATIONS notify.web records (default 20,000) for 2,000 people, published
 * while the inbox runs, timed from the first publish until every row is stored. Baseline in the same
 * run: a raw KafkaJS consumer that inserts each fetched batch with one multi-row INSERT and commits
 * (no bundling, counters, marks or cap), reading the same topic.
 *
 * Reading: one person with 2,000 notifications (the cap), then list (25 entries, bundles grouped)
 * and count requests one after another while writes for other people keep flowing at
 * BENCH_INBOX_WRITE_RATE per second; p50/p99 against GET /healthz of the same process, which is
 * the HTTP round trip with no work behind it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { join } from 'node:path';
import pg from 'pg';
import { DEFAULT_DATABASE_URL } from '../../libs/config/common.ts';
import { topicFor } from '../../libs/kafka/topics.ts';
import type { PublishItem } from '../../libs/publish/publish.ts';
import {
  applyTestTopicPlan,
  createStreamTopics,
  deleteDcTopics,
  eventually,
  freePort,
  serviceEnv,
  testKafka,
  testPublisher,
  uniqueDc,
} from '../integration/harness.ts';
import { INBOX_KEYS, inboxToken, webRecord } from '../integration/inbox-process.ts';
import { median, percentile, round } from './stats.ts';

const NOTIFICATIONS = Number(process.env.BENCH_INBOX_NOTIFICATIONS ?? 20_000);
const PEOPLE = 2_000;
const HEAVY = 2_000;
const SAMPLES = Number(process.env.BENCH_INBOX_SAMPLES ?? 300);
const WRITE_RATE = Number(process.env.BENCH_INBOX_WRITE_RATE ?? 200);
const CHUNK = 2_000;

const item = (user: string, i: number): PublishItem => ({
  stream: 'notify.web',
  record: webRecord(user, {
    dt: Date.now() - 3_600_000 + i,
    // A third bundle (thanks), the rest single notifications: the list groups both.
    ...(i % 3 === 0 ? { category: 'thank-you-edit', bundle_key: 'thank-you-edit', priority: 4 } : {}),
  }),
});

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

/** The baseline sink: each fetched batch is one INSERT ... ON CONFLICT DO NOTHING, then a commit. */
async function rawSink(topic: string, schema: string, db: pg.Pool): Promise<number> {
  const kafka = testKafka('eqiad');
  await db.query(
    `CREATE TABLE ${schema}.raw_sink (notification_id text PRIMARY KEY, payload bytea NOT NULL)`,
  );
  const consumer = kafka.consumer({ groupId: `bench-raw-${randomUUID()}`, maxWaitTimeInMs: 250 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let started = 0;
  let done = 0;
  await consumer.run({
    autoCommit: false,
    partitionsConsumedConcurrently: 6,
    eachBatch: async ({ batch, resolveOffset, commitOffsetsIfNecessary }) => {
      if (!started) started = performance.now();
      await db.query(
        `INSERT INTO ${schema}.raw_sink SELECT * FROM unnest($1::text[], $2::bytea[]) ON CONFLICT DO NOTHING`,
        [batch.messages.map((m) => `${batch.partition}:${m.offset}`), batch.messages.map((m) => m.value)],
      );
      const last = batch.messages.at(-1);
      if (last) resolveOffset(last.offset);
      await commitOffsetsIfNecessary();
      done += batch.messages.length;
    },
  });
  await eventually(() => (done >= NOTIFICATIONS ? true : undefined), 'the raw sink to drain', 300_000);
  const seconds = (performance.now() - started) / 1000;
  await consumer.disconnect();
  return NOTIFICATIONS / seconds;
}

export async function run(): Promise<Record<string, unknown>> {
  const kafka = testKafka('eqiad');
  const dc = uniqueDc();
  const schema = `inbox_${dc}`;
  const db = new pg.Pool({ connectionString: DEFAULT_DATABASE_URL, max: 4 });
  const publisher = testPublisher(dc, 'bench');
  let child: ChildProcess | undefined;
  const stored = async () =>
    (
      await db
        .query<{ n: number }>(`SELECT count(*)::int AS n FROM ${schema}.notifications`)
        .catch(() => ({ rows: [{ n: 0 }] }))
    ).rows[0]?.n ?? 0;
  try {
    await createStreamTopics(
      kafka,
      dc,
      ['notify.inbox-state', 'notify.user', 'notify.checkpoint', 'notify.status'],
      3,
    );
    await createStreamTopics(kafka, dc, ['notify.web'], 6);
    await applyTestTopicPlan(kafka, dc, { services: ['inbox'] });
    const port = await freePort();
    const apiPort = await freePort();
    child = spawn(process.execPath, [join(import.meta.dirname, '..', '..', 'services', 'inbox', 'main.ts')], {
      env: serviceEnv(dc, port, {
        DATABASE_SCHEMA: schema,
        INBOX_PORT: String(apiPort),
        INBOX_TOKEN_KEYS: INBOX_KEYS,
        INBOX_CONSUMER_GROUP: `inbox-${dc}`,
      }),
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    await eventually(
      async () =>
        (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.ok ? true : undefined,
      'the inbox to be ready',
      60_000,
    );

    const start = performance.now();
    for (let i = 0; i < NOTIFICATIONS; i += CHUNK) {
      await publisher.publishMany(
        Array.from({ length: Math.min(CHUNK, NOTIFICATIONS - i) }, (_, j) =>
          item(`p${(i + j) % PEOPLE}`, i + j),
        ),
      );
    }
    await eventually(
      async () => ((await stored()) >= NOTIFICATIONS ? true : undefined),
      'every row',
      600_000,
    );
    const storedPerSecond = NOTIFICATIONS / ((performance.now() - start) / 1000);
    console.log(`inbox stored ${Math.round(storedPerSecond)} notifications/s`);
    const rawPerSecond = await rawSink(topicFor(dc, 'notify.web'), schema, db);
    console.log(`raw sink ${Math.round(rawPerSecond)} records/s`);

    for (let i = 0; i < HEAVY; i += CHUNK) {
      await publisher.publishMany(
        Array.from({ length: Math.min(CHUNK, HEAVY - i) }, (_, j) => item('heavy', i + j)),
      );
    }
    await eventually(
      async () => ((await stored()) >= NOTIFICATIONS + HEAVY ? true : undefined),
      'the heavy inbox',
      300_000,
    );

    // Writes keep flowing for other people while the heavy person's inbox is read.
    let writing = true;
    let written = 0;
    const writer = (async () => {
      while (writing) {
        const tick = performance.now();
        const batch = Math.max(1, Math.round(WRITE_RATE / 10));
        await publisher.publishMany(
          Array.from({ length: batch }, (_, j) => item(`w${(written + j) % PEOPLE}`, j)),
        );
        written += batch;
        await new Promise((r) => setTimeout(r, Math.max(0, 100 - (performance.now() - tick))));
      }
    })();
    const headers = { authorization: `Bearer ${await inboxToken('heavy')}` };
    const api = `http://127.0.0.1:${apiPort}`;
    const get = async (url: string, init?: RequestInit) => {
      const res = await fetch(url, init);
      if (!res.ok) throw new Error(`${url}: ${res.status}`);
      await res.arrayBuffer();
    };
    const list: number[] = [];
    const count: number[] = [];
    const healthz: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      list.push(await timed(() => get(`${api}/v1/notifications?limit=25`, { headers })));
      count.push(await timed(() => get(`${api}/v1/counts`, { headers })));
      healthz.push(await timed(() => get(`http://127.0.0.1:${port}/healthz`)));
    }
    writing = false;
    await writer;
    const ms = (values: number[]) => ({
      p50: round(median(values), 2),
      p99: round(percentile(values, 99), 2),
    });
    return {
      notifications: NOTIFICATIONS,
      people: PEOPLE,
      stored_per_second: Math.round(storedPerSecond),
      raw_sink_per_second: Math.round(rawPerSecond),
      ratio_to_raw_sink: round(storedPerSecond / rawPerSecond),
      heavy_person_notifications: HEAVY,
      writes_during_reads: written,
      list_ms: ms(list),
      count_ms: ms(count),
      healthz_ms: ms(healthz),
      list_p50_to_healthz: round(median(list) / median(healthz), 2),
      count_p50_to_healthz: round(median(count) / median(healthz), 2),
    };
  } finally {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
    await publisher.close();
    await deleteDcTopics(kafka, dc);
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await db.end();
  }
}
