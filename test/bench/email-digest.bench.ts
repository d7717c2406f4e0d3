/**
 * Digest generation: BENCH_DIGEST_USERS people (default 100,000) with BENCH_DIGEST_ITEMS pending
 * notifications each (default 10), all due, seeded straight into the digest side's tables in a
 * Postgres schema and a datacenter of the bench's own. The due-mail poller's transaction
 * (sendDueBatch: claim with SKIP LOCKED, render, produce with acks=all, delete, record emitted ids)
 * runs in BENCH_DIGEST_WORKERS loops (default 2) until nothing is due; the time is from its first
 * claim to the last commit, and every record is counted on notify.email-send.
 *
 * Baseline, same run: the same number of records, of the same encoded size, produced with acks=all
 * by the same producer in the same batch size, with no database and no rendering.
 *
 * Plans: EXPLAIN of the due query, the items query and the delete over the seeded tables; the
 * bench fails if any of them scans pending_mail or pending_items sequentially.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { Registry } from 'prom-client';
import { DEFAULT_DATABASE_URL } from '../../libs/config/common.ts';
import { migrate } from '../../libs/db/migrate.ts';
import { createPool } from '../../libs/db/pool.ts';
import { createProducer, DURABLE_SEND } from '../../libs/kafka/client.ts';
import { createTopicsWithLeaders } from '../../libs/kafka/topic-admin.ts';
import { localPartitions } from '../../libs/kafka/topic-plan.ts';
import { topicFor } from '../../libs/kafka/topics.ts';
import { createSerde } from '../../libs/schemas/serde.ts';
import { recordKey } from '../../libs/schemas/stream-keys.ts';
import type { NotifyEmailSend } from '../../libs/schemas/types.generated.ts';
import type { ComposeSettings } from '../../services/email/compose-mail.ts';
import { createDigestMetrics } from '../../services/email/digest-metrics.ts';
import { sendDueBatch } from '../../services/email/due-mail.ts';
import { DUE_QUERY, ITEMS_QUERY } from '../../services/email/pending-store.ts';
import { loadTemplates } from '../../services/email/render.ts';
import { parseKeyRing } from '../../services/email/unsubscribe-token.ts';
import { deleteDcTopics, REGISTRY_URL, testKafka, uniqueDc, withAdmin } from '../integration/harness.ts';
import { round } from './stats.ts';

const USERS = Number(process.env.BENCH_DIGEST_USERS ?? 100_000);
const ITEMS = Number(process.env.BENCH_DIGEST_ITEMS ?? 10);
const WORKERS = Number(process.env.BENCH_DIGEST_WORKERS ?? 2);
const BATCH = 200;
const MIGRATIONS = join(import.meta.dirname, '..', '..', 'services', 'email', 'migrations');
const TIMEZONES = ['Europe/Berlin', 'America/New_York', 'Asia/Tokyo', 'UTC', 'America/Sao_Paulo'];

/** One statement per table, generated in Postgres: 1,000,000 rows do not cross the wire as parameters. */
async function seed(db: pg.Pool, now: number): Promise<void> {
  await db.query(
    `INSERT INTO pending_mail (recipient_id, kind, group_key, due_at, email, locale, timezone)
     SELECT 'user-' || u, 'daily', '', $1::timestamptz - (u % 3600) * interval '1 second',
            'user-' || u || '@example.org', 'en', ($2::text[])[1 + u % $3]
     FROM generate_series(1, $4) AS u`,
    [new Date(now), TIMEZONES, TIMEZONES.length, USERS],
  );
  await db.query(
    `INSERT INTO pending_items (recipient_id, kind, group_key, notification_id, event_time, category, payload)
     SELECT 'user-' || u, 'daily', '', md5(u || '/' || i), $1::timestamptz - i * interval '1 hour', 'edit-user-talk',
            jsonb_build_object(
              'notification_id', md5(u || '/' || i), 'event_id', 'event-' || u || '-' || i,
              'event_type', 'edit-user-talk', 'category', 'edit-user-talk', 'recipient_id', 'user-' || u,
              'agent', jsonb_build_object('id', 'agent-' || i, 'name', 'Editor ' || i),
              'title', 'Someone left a message about page ' || i, 'url', 'https://wiki.example.org/wiki/Page_' || i,
              'extra', '{}'::jsonb, 'priority', 3, 'bundle_key', null, 'locale', 'en', 'timezone', 'UTC')
     FROM generate_series(1, $2) AS u, generate_series(1, $3) AS i`,
    [new Date(now), USERS, ITEMS],
  );
  await db.query('ANALYZE pending_mail; ANALYZE pending_items');
}

interface Plan {
  query: string;
  plan: string[];
  seqScans: string[];
}

async function explain(db: pg.Pool, name: string, sql: string, params: unknown[]): Promise<Plan> {
  // EXPLAIN takes no bind parameters: prepare the statement and explain its execution.
  const statement = `bench_${name.replaceAll(/\W/g, '_')}`;
  const types = params.map((p) => (Array.isArray(p) ? 'text[]' : p instanceof Date ? 'timestamptz' : 'int'));
  const client = await db.connect();
  try {
    await client.query(`PREPARE ${statement} (${types.join(', ')}) AS ${sql}`);
    const literals = params.map((p) =>
      Array.isArray(p)
        ? `ARRAY[${p.map((v) => `'${String(v)}'`).join(',')}]::text[]`
        : p instanceof Date
          ? `'${p.toISOString()}'::timestamptz`
          : String(p),
    );
    // BEGIN/ROLLBACK: the delete is only planned, but FOR UPDATE wants a transaction to be explained in.
    await client.query('BEGIN');
    const { rows } = await client.query<{ 'QUERY PLAN': string }>(
      `EXPLAIN EXECUTE ${statement}(${literals.join(', ')})`,
    );
    await client.query('ROLLBACK');
    await client.query(`DEALLOCATE ${statement}`);
    const plan = rows.map((r) => r['QUERY PLAN']);
    return {
      query: name,
      plan,
      seqScans: plan.filter((line) => /Seq Scan on pending_(mail|items)/.test(line)),
    };
  } finally {
    client.release();
  }
}

export async function run(): Promise<Record<string, unknown>> {
  const kafka = testKafka('eqiad');
  const dc = uniqueDc();
  const schema = `email_${dc}`;
  const admin = new pg.Pool({ connectionString: DEFAULT_DATABASE_URL, max: 1 });
  const db = createPool({
    url: DEFAULT_DATABASE_URL,
    schema,
    applicationName: 'email-digest-bench',
    max: WORKERS + 2,
  });
  const serde = createSerde({ registryUrl: REGISTRY_URL });
  const producer = createProducer(kafka);
  const log = pino({ level: 'warn' });
  const topic = topicFor(dc, 'notify.email-send');
  try {
    await withAdmin(kafka, (a) =>
      createTopicsWithLeaders(a, [{ topic, numPartitions: localPartitions('notify.email-send') }]),
    );
    await migrate(db, { schema, dir: MIGRATIONS, log });
    await producer.connect();
    const now = Date.now();
    const seedStart = performance.now();
    await seed(db, now);
    const seedSeconds = (performance.now() - seedStart) / 1000;
    console.log(`${USERS} users × ${ITEMS} items seeded in ${round(seedSeconds, 1)} s`);

    const sample = await db.query<{ recipient_id: string }>(
      'SELECT recipient_id FROM pending_mail ORDER BY due_at LIMIT $1',
      [BATCH],
    );
    const keys = sample.rows.map((r) => r.recipient_id);
    const plans = [
      await explain(db, 'due', DUE_QUERY, [new Date(now), BATCH]),
      await explain(db, 'items', ITEMS_QUERY, [keys, keys.map(() => 'daily'), keys.map(() => '')]),
      await explain(
        db,
        'delete',
        `DELETE FROM pending_mail p USING unnest($1::text[], $2::text[], $3::text[]) AS m(recipient_id, kind, group_key)
         WHERE p.recipient_id = m.recipient_id AND p.kind = m.kind AND p.group_key = m.group_key`,
        [keys, keys.map(() => 'daily'), keys.map(() => '')],
      ),
    ];
    const seqScans = plans.flatMap((p) => p.seqScans.map((line) => `${p.query}: ${line.trim()}`));
    if (seqScans.length > 0) throw new Error(`sequential scans of pending tables:\n${seqScans.join('\n')}`);

    const compose: ComposeSettings = {
      templates: await loadTemplates(),
      keyRing: parseKeyRing(`bench:${randomBytes(32).toString('base64')}`),
      unsubscribeUrl: 'https://mail.example.org/unsubscribe',
      unsubscribeMailto: undefined,
      unsubscribeTtlMs: 60 * 86_400_000,
      from: 'Tidings <notifications@mail.example.org>',
      sendingDomain: 'mail.example.org',
      siteName: 'Tidings',
      origin: { dc, producer: 'email' },
    };
    let encodedBytes = 0;
    let sample0: Buffer | undefined;
    const produce = async (records: readonly NotifyEmailSend[]) => {
      if (records.length === 0) return;
      const messages = await Promise.all(
        records.map(async (r) => ({
          key: recordKey('notify.email-send', r),
          value: await serde.encode('notify.email-send', r),
        })),
      );
      for (const m of messages) encodedBytes += m.value.length;
      sample0 ??= messages[0]?.value;
      await producer.send({ ...DURABLE_SEND, topic, messages });
    };
    const options = {
      db,
      compose,
      produce,
      batchSize: BATCH,
      metrics: createDigestMetrics(new Registry()),
      log,
      now: () => now,
    };
    const drainStart = performance.now();
    await Promise.all(
      Array.from({ length: WORKERS }, async () => {
        while ((await sendDueBatch(options)) > 0) {
          // Each call is one transaction; loop until nothing is due.
        }
      }),
    );
    const drainSeconds = (performance.now() - drainStart) / 1000;
    const remaining = await db.query<{ mails: string; items: string; emitted: string }>(
      `SELECT (SELECT count(*) FROM pending_mail) AS mails, (SELECT count(*) FROM pending_items) AS items,
              (SELECT count(*) FROM emitted_notifications) AS emitted`,
    );
    const produced = await withAdmin(kafka, async (a) =>
      (await a.fetchTopicOffsets(topic)).reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0),
    );
    if (produced !== USERS) throw new Error(`expected ${USERS} digests on ${topic}, found ${produced}`);
    console.log(`drained ${USERS} digests in ${round(drainSeconds, 1)} s`);

    // Baseline: the same number of records of the same size, produced the same way, nothing else.
    const value = sample0 ?? Buffer.alloc(Math.round(encodedBytes / USERS));
    const baselineStart = performance.now();
    for (let sent = 0; sent < USERS; sent += BATCH) {
      const count = Math.min(BATCH, USERS - sent);
      await producer.send({
        ...DURABLE_SEND,
        topic,
        messages: Array.from({ length: count }, (_, i) => ({ key: `user-${sent + i}`, value })),
      });
    }
    const baselineSeconds = (performance.now() - baselineStart) / 1000;

    return {
      users: USERS,
      items_per_user: ITEMS,
      workers: WORKERS,
      batch: BATCH,
      seed_seconds: round(seedSeconds, 1),
      drain_seconds: round(drainSeconds, 2),
      digests_per_second: Math.round(USERS / drainSeconds),
      items_per_second: Math.round((USERS * ITEMS) / drainSeconds),
      mean_record_bytes: Math.round(encodedBytes / USERS),
      baseline_produce_seconds: round(baselineSeconds, 2),
      ratio_vs_produce_only: round(baselineSeconds / drainSeconds, 3),
      left_after_drain: remaining.rows[0],
      plans,
    };
  } finally {
    await producer.disconnect();
    await db.end();
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.end();
    await deleteDcTopics(kafka, dc);
  }
}
