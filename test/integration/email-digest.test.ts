/**
 * The email service's digest side against the real stack (Kafka, the registry, Postgres), in a
 * datacenter and a Postgres schema of its own. Assertions are on notify.email-send, the DLQ,
 * notify.preference-change and the unsubscribe endpoint; the sender's SMTP half is tested apart.
 *
 * The side runs in this process through startDigestSide, the function main.ts calls, with the
 * consumer runtime, pool and migrations of a real service. The one difference from production is
 * the clock it is given: a variable this test moves, so a daily digest is due "at 08:00 in Berlin"
 * without waiting for it. One test spawns main.ts itself to show the production wiring.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { KafkaMessage } from 'kafkajs';
import pg from 'pg';
import { Registry } from 'prom-client';
import { commonRules, commonSpec, DEFAULT_DATABASE_URL } from '../../libs/config/common.ts';
import { loadConfig } from '../../libs/config/load.ts';
import { migrate } from '../../libs/db/migrate.ts';
import { createPool } from '../../libs/db/pool.ts';
import { createConsumerRuntime } from '../../libs/kafka/consumer-runtime.ts';
import { HEADER, headerString } from '../../libs/kafka/record-headers.ts';
import { plannedGroup } from '../../libs/kafka/topic-plan.ts';
import { dlqTopic, topicFor } from '../../libs/kafka/topics.ts';
import type { StreamName } from '../../libs/schemas/catalog.ts';
import { createSerde } from '../../libs/schemas/serde.ts';
import type {
  EmailDelivery,
  NotificationInput,
  NotifyEmailSend,
  NotifyPreferenceChange,
  RecordInput,
  StreamRecords,
} from '../../libs/schemas/types.generated.ts';
import { consumerSpec, runtimeTuning } from '../../libs/service/consumer-config.ts';
import { digestSpec } from '../../services/email/digest-config.ts';
import { jitterFor } from '../../services/email/digest-schedule.ts';
import { startDigestSide } from '../../services/email/digest-side.ts';
import { cleanUp } from '../../services/email/pending-store.ts';
import { DEFAULT_TEMPLATE_DIR } from '../../services/email/render.ts';
import { parseKeyRing, signUnsubscribeToken } from '../../services/email/unsubscribe-token.ts';
import {
  applyTestTopicPlan,
  deleteDcTopics,
  eventually,
  freePort,
  quietLog,
  REGISTRY_URL,
  readTopic,
  serviceEnv,
  spawnService,
  stopServices,
  testKafka,
  testPublisher,
  uniqueDc,
  withAdmin,
} from './harness.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const MIGRATIONS = join(import.meta.dirname, '..', '..', 'services', 'email', 'migrations');
const KEYS = `k1:${randomBytes(32).toString('base64')}`;
const ring = parseKeyRing(KEYS);

const kafka = testKafka('eqiad');
const serde = createSerde({ registryUrl: REGISTRY_URL });
const admin = new pg.Pool({ connectionString: DEFAULT_DATABASE_URL, max: 2 });
const dc = uniqueDc();
const schema = `email_${dc}`;
const publisher = testPublisher(dc, 'test');

/** The clock the digest side reads; tests move it. */
let clock = Date.now();
let unsubscribePort = 0;
let templateDir = '';
const registry = new Registry();
const shutdownSteps: (() => Promise<void> | void)[] = [];

/** What runService does for a service, minus signals and the ops server: config, pool, migrations, consume. */
async function startInProcess(): Promise<void> {
  unsubscribePort = await freePort();
  const env = serviceEnv(dc, await freePort(), {
    DATABASE_SCHEMA: schema,
    EMAIL_UNSUBSCRIBE_KEYS: KEYS,
    EMAIL_UNSUBSCRIBE_PORT: String(unsubscribePort),
    EMAIL_UNSUBSCRIBE_URL: `http://127.0.0.1:${unsubscribePort}/unsubscribe`,
    EMAIL_UNSUBSCRIBE_MAILTO: 'unsubscribe@mail.example.org',
    EMAIL_TEMPLATE_DIR: templateDir,
    EMAIL_BUNDLE_INTERVAL: '1h',
    EMAIL_DIGEST_HOUR: '8',
    EMAIL_DIGEST_JITTER: '10m',
    EMAIL_DUE_POLL_INTERVAL: '100ms',
    CONSUMER_SESSION_TIMEOUT: '6s',
    CHECKPOINT_INTERVAL: '500ms',
  });
  const config = loadConfig({ ...commonSpec(env, { httpPort: 9102 }), ...consumerSpec, ...digestSpec }, env, {
    rules: commonRules,
  });
  const db = createPool({ url: config.DATABASE_URL, schema, applicationName: 'email-test' });
  shutdownSteps.push(() => db.end());
  await migrate(db, { schema, dir: MIGRATIONS, log: quietLog });
  await startDigestSide(
    {
      name: 'email',
      config,
      log: quietLog,
      registry,
      kafka,
      serde,
      db,
      onShutdown: (_name, fn) => shutdownSteps.push(fn),
      addReadiness: () => undefined,
      async consume(options) {
        const runtime = createConsumerRuntime({
          ...runtimeTuning(config),
          ...options,
          // Other tests on this cluster run email processes in group "email" with their own topics.
          group: `${options.group ?? plannedGroup('email', options.stream) ?? 'email'}-${dc}`,
          kafka,
          codec: serde,
          log: quietLog,
          registry,
          service: 'email',
          dc,
          dcs: [dc],
        });
        shutdownSteps.push(() => runtime.stop());
        await runtime.start();
        return runtime;
      },
    },
    () => clock,
  );
}

before(async () => {
  await applyTestTopicPlan(kafka, dc, { services: ['email'] });
  // The shipped templates plus a category whose template names a partial that does not exist.
  templateDir = await mkdtemp(join(tmpdir(), 'email-templates-'));
  await cp(DEFAULT_TEMPLATE_DIR, templateDir, { recursive: true });
  await cp(join(DEFAULT_TEMPLATE_DIR, '_default'), join(templateDir, 'broken'), { recursive: true });
  await writeFile(join(templateDir, 'broken', 'en.text.hbs'), '{{> no-such-partial}}\n');
  await startInProcess();
});

/** Stops the in-process side, last started first; safe to call twice. */
async function stopInProcess(): Promise<void> {
  for (const step of shutdownSteps.splice(0).reverse()) await step();
}

after(async () => {
  await stopInProcess();
  await publisher.close();
  await deleteDcTopics(kafka, dc);
  await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await admin.end();
  await rm(templateDir, { recursive: true, force: true });
});

const newId = () => randomBytes(16).toString('hex');

interface MailOptions {
  user: string;
  id?: string;
  frequency?: 'instant' | 'daily' | 'weekly';
  dt?: number;
  email?: string;
  transactional?: boolean;
  delivery?: EmailDelivery;
  notification?: Partial<NotificationInput>;
}

function notifyEmail({
  user,
  id = newId(),
  frequency = 'instant',
  dt = clock,
  email = `${user}@example.org`,
  transactional = false,
  delivery = 'at_least_once',
  notification = {},
}: MailOptions): RecordInput<'notify.email'> {
  return {
    meta: { dt },
    email,
    email_frequency: frequency,
    transactional,
    delivery,
    notification: {
      notification_id: id,
      event_id: `e-${id}`,
      event_type: 'edit-user-talk',
      category: 'edit-user-talk',
      recipient_id: user,
      agent: { id: 'a1', name: 'Alice' },
      title: `Title ${id.slice(0, 6)}`,
      url: `https://wiki.example.org/wiki/User_talk:${user}`,
      extra: {},
      priority: 3,
      bundle_key: null,
      locale: 'en',
      timezone: 'UTC',
      ...notification,
    },
  };
}

async function publishMail(options: MailOptions): Promise<string> {
  const record = notifyEmail(options);
  await publisher.publish('notify.email', record);
  return record.notification.notification_id;
}

async function decodeAll<S extends StreamName>(
  stream: S,
  messages: KafkaMessage[],
): Promise<StreamRecords[S][]> {
  return Promise.all(messages.filter((m) => m.value).map((m) => serde.decode(stream, m.value as Buffer)));
}

/** Every record in the topic right now: each partition read up to the end offset taken first. */
async function readAll(topic: string): Promise<KafkaMessage[]> {
  const ends = new Map(
    (await withAdmin(kafka, (a) => a.fetchTopicOffsets(topic)))
      .filter((p) => Number(p.high) > Number(p.low))
      .map((p) => [p.partition, Number(p.high)]),
  );
  if (ends.size === 0) return [];
  const consumer = kafka.consumer({ groupId: `reader-${newId()}`, maxWaitTimeInMs: 100 });
  // Keyed by position: a rebalance of the reader's own group can hand it records twice.
  const messages = new Map<string, KafkaMessage>();
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`reading ${topic} timed out`)), 20_000);
      consumer.on(consumer.events.CRASH, ({ payload }) => reject(payload.error));
      void consumer.run({
        eachMessage: async ({ partition, message }) => {
          const end = ends.get(partition);
          if (end === undefined || Number(message.offset) >= end) return;
          messages.set(`${partition}:${message.offset}`, message);
          if (Number(message.offset) === end - 1) ends.delete(partition);
          if (ends.size === 0) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return [...messages.values()];
}

/** Every record of the stream so far, once `until` holds for them. */
async function recordsUntil<S extends StreamName>(
  stream: S,
  until: (records: StreamRecords[S][]) => boolean,
): Promise<StreamRecords[S][]> {
  let records: StreamRecords[S][] = [];
  await eventually(
    async () => {
      records = await decodeAll(stream, await readAll(topicFor(dc, stream)));
      return until(records) ? true : undefined;
    },
    `${stream} records`,
    60_000,
  );
  return records;
}

const sendsUntil = (until: (records: NotifyEmailSend[]) => boolean) =>
  recordsUntil('notify.email-send', until);

async function sql<T extends pg.QueryResultRow>(text: string, params: unknown[] = []): Promise<T[]> {
  return (await admin.query<T>(text.replaceAll('email.', `${schema}.`), params)).rows;
}

const forUser = (records: NotifyEmailSend[], user: string) => records.filter((r) => r.recipient_id === user);

describe('instant mail', () => {
  test('one email-send record with List-Unsubscribe headers, subject and body; a redelivery emits nothing', async () => {
    const id = await publishMail({ user: 'u-instant', notification: { title: 'Welcome back' } });
    const [mail] = forUser(await sendsUntil((r) => forUser(r, 'u-instant').length > 0), 'u-instant');
    assert.ok(mail);
    assert.deepEqual(mail.notification_ids, [id]);
    assert.equal(mail.kind, 'instant');
    assert.equal(mail.to, 'u-instant@example.org');
    assert.equal(mail.subject, 'Alice left a message on your talk page');
    assert.match(mail.text, /https:\/\/wiki\.example\.org\/wiki\/User_talk:u-instant/);
    assert.match(mail.html, /Alice/);
    assert.match(
      mail.headers['List-Unsubscribe'] ?? '',
      new RegExp(
        `^<http://127\\.0\\.0\\.1:${unsubscribePort}/unsubscribe\\?token=[^>]+>, <mailto:unsubscribe@mail\\.example\\.org\\?subject=[^>]+>$`,
      ),
    );
    assert.equal(mail.headers['List-Unsubscribe-Post'], 'List-Unsubscribe=One-Click');
    assert.equal(mail.headers['Message-ID'], `<${mail.send_id}@mail.example.org>`);

    // The same notification again, then a marker for the same person (same partition, so it is
    // handled after the redelivery): once the marker is mailed, the redelivery has been decided.
    await publisher.publish('notify.email', notifyEmail({ user: 'u-instant', id }));
    const marker = await publishMail({ user: 'u-instant' });
    const records = forUser(
      await sendsUntil((r) => r.some((m) => m.notification_ids.includes(marker))),
      'u-instant',
    );
    assert.equal(records.filter((m) => m.notification_ids.includes(id)).length, 1);
    assert.equal(records.length, 2);
    const [row] = await sql<{ send_id: string }>(
      'SELECT send_id FROM email.emitted_notifications WHERE notification_id = $1',
      [id],
    );
    assert.equal(row?.send_id, mail.send_id);
  });

  test('a transactional category goes out at once without unsubscribe headers, even for a digest reader', async () => {
    await publishMail({
      user: 'u-reset',
      frequency: 'daily',
      transactional: true,
      notification: { category: 'password-reset' },
    });
    const [mail] = forUser(await sendsUntil((r) => forUser(r, 'u-reset').length > 0), 'u-reset');
    assert.equal(mail?.kind, 'transactional');
    assert.equal(mail?.delivery, 'at_least_once');
    assert.equal(mail?.headers['List-Unsubscribe'], undefined);
  });

  test('the category’s at-most-once choice travels from notify.email to the sender', async () => {
    await publishMail({ user: 'u-once', delivery: 'at_most_once' });
    const [mail] = forUser(await sendsUntil((r) => forUser(r, 'u-once').length > 0), 'u-once');
    assert.equal(mail?.kind, 'instant');
    assert.equal(mail?.delivery, 'at_most_once');
  });
});

describe('bundling', () => {
  test('the first mail goes at once; the next two within the interval go out together at its end', async () => {
    const start = clock;
    const bundle = { bundle_key: 'page-linked', category: 'page-linked' };
    const first = await publishMail({ user: 'u-bundle', dt: start, notification: bundle });
    const second = await publishMail({
      user: 'u-bundle',
      dt: start + MINUTE,
      notification: { ...bundle, title: 'Second link' },
    });
    const third = await publishMail({
      user: 'u-bundle',
      dt: start + 2 * MINUTE,
      notification: { ...bundle, title: 'Third link' },
    });
    await eventually(async () => {
      const rows = await sql('SELECT 1 FROM email.pending_items WHERE recipient_id = $1', ['u-bundle']);
      return rows.length === 2 ? true : undefined;
    }, 'two held notifications');
    const [due] = await sql<{ due_at: Date }>(
      `SELECT due_at FROM email.pending_mail WHERE recipient_id = 'u-bundle' AND kind = 'bundle'`,
    );
    assert.equal(due?.due_at.getTime(), start + HOUR);
    const before = forUser(await sendsUntil((r) => forUser(r, 'u-bundle').length > 0), 'u-bundle');
    assert.deepEqual(
      before.map((m) => m.notification_ids),
      [[first]],
    );

    clock = start + HOUR + 1_000;
    const records = forUser(await sendsUntil((r) => forUser(r, 'u-bundle').length >= 2), 'u-bundle');
    assert.equal(records.length, 2);
    const bundled = records[1];
    assert.equal(bundled?.kind, 'bundle', 'after the instant mail, on the same partition');
    assert.deepEqual(bundled?.notification_ids, [second, third].sort());
    assert.match(bundled?.text ?? '', /Second link[\s\S]*Third link/);
    assert.equal(bundled?.subject, '2 new notifications on Tidings');
    assert.deepEqual(await sql('SELECT 1 FROM email.pending_mail WHERE recipient_id = $1', ['u-bundle']), []);
  });
});

describe('daily digest', () => {
  test('two people in different timezones get their digest at 08:00 local, spread by their jitter', async () => {
    // 10 March 2026: Berlin is UTC+1, New York already on daylight time, UTC-4.
    clock = Date.UTC(2026, 2, 10, 0, 0);
    const people = [
      { user: 'u-berlin', timezone: 'Europe/Berlin', at: Date.UTC(2026, 2, 10, 7) },
      { user: 'u-newyork', timezone: 'America/New_York', at: Date.UTC(2026, 2, 10, 12) },
    ];
    const ids = new Map<string, string[]>();
    for (const { user, timezone } of people) {
      const held = [];
      for (const title of ['Morning edit', 'Evening edit']) {
        held.push(
          await publishMail({ user, frequency: 'daily', notification: { title, timezone, locale: 'en' } }),
        );
      }
      ids.set(user, held.sort());
    }
    await eventually(async () => {
      const rows = await sql(`SELECT 1 FROM email.pending_items WHERE kind = 'daily'`);
      return rows.length === 4 ? true : undefined;
    }, 'four held notifications');
    for (const { user, at } of people) {
      const [row] = await sql<{ due_at: Date }>(
        `SELECT due_at FROM email.pending_mail WHERE recipient_id = $1 AND kind = 'daily'`,
        [user],
      );
      assert.equal(row?.due_at.getTime(), at + jitterFor(user, 10 * MINUTE), `${user} is due at 08:00 local`);
    }

    // After Berlin's window, before New York's.
    clock = Date.UTC(2026, 2, 10, 7, 10);
    const berlin = forUser(await sendsUntil((r) => forUser(r, 'u-berlin').length > 0), 'u-berlin');
    assert.equal(berlin.length, 1);
    assert.equal(berlin[0]?.kind, 'daily');
    assert.deepEqual(berlin[0]?.notification_ids, ids.get('u-berlin'));
    assert.match(berlin[0]?.text ?? '', /Morning edit[\s\S]*Evening edit|Evening edit[\s\S]*Morning edit/);
    assert.ok(berlin[0]?.headers['List-Unsubscribe']);
    assert.equal(
      new Date(berlin[0]?.meta.dt ?? 0).toLocaleString('en-GB', {
        timeZone: 'Europe/Berlin',
        hour: '2-digit',
      }),
      '08',
    );
    const waiting = await sql(`SELECT 1 FROM email.pending_mail WHERE recipient_id = 'u-newyork'`);
    assert.equal(waiting.length, 1, 'New York is not due at 07:10 UTC');

    clock = Date.UTC(2026, 2, 10, 12, 10);
    const records = await sendsUntil((r) => forUser(r, 'u-newyork').length > 0);
    const newYork = forUser(records, 'u-newyork');
    assert.equal(newYork.length, 1);
    assert.deepEqual(newYork[0]?.notification_ids, ids.get('u-newyork'));
    assert.equal(
      new Date(newYork[0]?.meta.dt ?? 0).toLocaleString('en-GB', {
        timeZone: 'America/New_York',
        hour: '2-digit',
      }),
      '08',
    );
    assert.equal(forUser(records, 'u-berlin').length, 1, 'Berlin got one digest');
    assert.deepEqual(await sql(`SELECT 1 FROM email.pending_items WHERE kind = 'daily'`), []);
    const emitted = await sql('SELECT 1 FROM email.emitted_notifications WHERE notification_id = ANY($1)', [
      [...(ids.get('u-berlin') ?? []), ...(ids.get('u-newyork') ?? [])],
    ]);
    assert.equal(emitted.length, 4);
  });
});

describe('read on the web', () => {
  test('an item the person read on the web never arrives in the next digest', async () => {
    clock = Date.UTC(2026, 2, 11, 0, 0);
    const user = 'u-webread';
    const held = [];
    for (const [title, ago] of [
      ['Read by id', 3_000],
      ['Read by read-all', 2_000],
      ['Still unread', 1_000],
    ] as const) {
      held.push(await publishMail({ user, frequency: 'daily', dt: clock - ago, notification: { title } }));
    }
    const [byId, byReadAll, unread] = held;
    await eventually(async () => {
      const rows = await sql('SELECT 1 FROM email.pending_items WHERE recipient_id = $1', [user]);
      return rows.length === 3 ? true : undefined;
    }, 'three held notifications');

    // What the inbox publishes when the person reads on the web: one by event id (the web
    // notification has its own notification id), then "mark all read" up to the second one's time.
    const state = (
      fields: Partial<RecordInput<'notify.inbox-state'>>,
    ): RecordInput<'notify.inbox-state'> => ({
      user_id: user,
      action: 'read',
      notification_ids: ['web-notification-id'],
      event_ids: [],
      up_to: null,
      ...fields,
    });
    await publisher.publish('notify.inbox-state', state({ event_ids: [`e-${byId}`] }));
    await publisher.publish('notify.inbox-state', state({ action: 'unread', event_ids: [`e-${unread}`] }));
    await publisher.publish('notify.inbox-state', state({ up_to: clock - 2_000 }));
    await eventually(async () => {
      const rows = await sql<{ id: string }>(
        'SELECT notification_id AS id FROM email.pending_items WHERE recipient_id = $1',
        [user],
      );
      return rows.length === 1 && rows[0]?.id === unread ? true : undefined;
    }, 'the two read items to leave the pending digest');

    clock = Date.UTC(2026, 2, 11, 8, 11);
    const [digest, ...others] = forUser(await sendsUntil((r) => forUser(r, user).length > 0), user);
    assert.equal(others.length, 0);
    assert.deepEqual(digest?.notification_ids, [unread]);
    assert.doesNotMatch(digest?.text ?? '', /Read by/);
    assert.ok(
      !held.slice(0, 2).some((id) => digest?.notification_ids.includes(id as string)),
      `${byReadAll}`,
    );
  });
});

describe('clean-up', () => {
  test('old emitted ids and settled bundle states go; a bundle state with a held bundle stays', async () => {
    const db = createPool({ url: DEFAULT_DATABASE_URL, schema, applicationName: 'email-test-cleanup' });
    try {
      // Before every time the other tests wrote, so only this test's rows are old enough.
      const now = Date.UTC(2026, 0, 1);
      await sql(
        `INSERT INTO email.emitted_notifications (notification_id, send_id, emitted_at)
         VALUES ('old-id', 's1', $1), ('recent-id', 's2', $2)`,
        [new Date(now - 20 * 24 * HOUR), new Date(now - HOUR)],
      );
      await sql(
        `INSERT INTO email.bundle_state (recipient_id, bundle_key, last_sent_at)
         VALUES ('u-settled', 'k', $1), ('u-held', 'k', $1), ('u-recent', 'k', $2)`,
        [new Date(now - 3 * HOUR), new Date(now - MINUTE)],
      );
      await sql(
        `INSERT INTO email.pending_mail (recipient_id, kind, group_key, due_at, email, locale, timezone)
         VALUES ('u-held', 'bundle', 'k', $1, 'u-held@example.org', 'en', 'UTC')`,
        [new Date(now + HOUR)],
      );
      const deleted = await cleanUp(db, { now, emittedRetentionMs: 14 * 24 * HOUR, bundleIntervalMs: HOUR });
      assert.deepEqual(deleted, { emitted: 1, bundleStates: 1 });
      const ids = await sql<{ notification_id: string }>(
        `SELECT notification_id FROM email.emitted_notifications WHERE notification_id IN ('old-id', 'recent-id')`,
      );
      assert.deepEqual(
        ids.map((r) => r.notification_id),
        ['recent-id'],
      );
      const states = await sql<{ recipient_id: string }>(
        `SELECT recipient_id FROM email.bundle_state WHERE bundle_key = 'k' ORDER BY recipient_id`,
      );
      assert.deepEqual(
        states.map((r) => r.recipient_id),
        ['u-held', 'u-recent'],
      );
    } finally {
      await sql(`DELETE FROM email.pending_mail WHERE recipient_id = 'u-held'`);
      await db.end();
    }
  });
});

describe('header injection', () => {
  test('CR and LF in title, agent name and extra cannot add headers to the email-send record', async () => {
    await publishMail({
      user: 'u-crlf',
      notification: {
        title: 'Hi\r\nBcc: victim@example.org',
        agent: { id: 'a2', name: 'Mallory\r\nX-Injected: yes' },
        extra: { section: 'Talk\r\n\r\nContent-Type: text/html' },
        category: 'page-linked',
      },
    });
    const [mail] = forUser(await sendsUntil((r) => forUser(r, 'u-crlf').length > 0), 'u-crlf');
    assert.ok(mail);
    assert.equal(mail.subject, 'Mallory X-Injected: yes: Hi Bcc: victim@example.org — Tidings');
    for (const [name, value] of Object.entries({
      ...mail.headers,
      Subject: mail.subject,
      To: mail.to,
      From: mail.from,
    }))
      assert.doesNotMatch(value, /[\r\n]/, `${name} stays on one line`);
    assert.deepEqual(
      Object.keys(mail.headers).filter((name) => /bcc|x-injected|content-type/i.test(name)),
      [],
    );
  });
});

describe('bad input', () => {
  test('an unknown category and locale fall back to the default template in English', async () => {
    await publishMail({
      user: 'u-fallback',
      notification: { category: 'no-such-category', locale: 'xx-YY' },
    });
    const [mail] = forUser(await sendsUntil((r) => forUser(r, 'u-fallback').length > 0), 'u-fallback');
    assert.equal(mail?.locale, 'en');
    assert.match(mail?.subject ?? '', /Alice: Title/);
  });

  test('a mail that cannot be rendered and a broken address are dead-lettered; the partition moves on', async () => {
    const broken = await publishMail({ user: 'u-bad', notification: { category: 'broken' } });
    const noAddress = await publishMail({ user: 'u-bad', email: 'not an address\r\nBcc: x@example.org' });
    const good = await publishMail({ user: 'u-bad' });
    const records = forUser(
      await sendsUntil((r) => r.some((m) => m.notification_ids.includes(good))),
      'u-bad',
    );
    assert.deepEqual(
      records.map((m) => m.notification_ids),
      [[good]],
    );
    const dlq = await eventually(async () => {
      const messages = await readAll(dlqTopic(dc, 'notify.email', 'email'));
      return messages.length >= 2 ? messages : undefined;
    }, 'two dead letters');
    const letters = await Promise.all(
      dlq.map(async (m) => ({
        id: (await serde.decode('notify.email', m.value as Buffer)).notification.notification_id,
        kind: headerString(m.headers, HEADER.errorKind),
        message: headerString(m.headers, HEADER.errorMessage) ?? '',
        source: headerString(m.headers, HEADER.sourceTopic),
      })),
    );
    const byId = new Map(letters.map((l) => [l.id, l]));
    assert.equal(byId.get(broken)?.kind, 'rejected:render-failed');
    assert.match(byId.get(broken)?.message ?? '', /no-such-partial/);
    assert.equal(byId.get(noAddress)?.kind, 'rejected:invalid-address');
    assert.equal(byId.get(good), undefined);
    assert.equal(byId.get(broken)?.source, topicFor(dc, 'notify.email'));
  });
});

describe('one-click unsubscribe', () => {
  const endpoint = () => `http://127.0.0.1:${unsubscribePort}/unsubscribe`;
  const tokenFor = (user: string, category: string | null, expiresAt = clock + HOUR) =>
    signUnsubscribeToken(ring, {
      userId: user,
      categories: category === null ? null : [category],
      channel: 'email',
      expiresAt,
    });

  const preferenceChanges = (until: (r: NotifyPreferenceChange[]) => boolean) =>
    recordsUntil('notify.preference-change', until);

  async function unsubscribesCounted(result: string): Promise<number> {
    const metric = await registry.getSingleMetric('tidings_email_unsubscribe_requests_total')?.get();
    return (metric?.values ?? [])
      .filter((v) => v.labels.result === result)
      .reduce((sum, v) => sum + v.value, 0);
  }

  test('GET shows a confirmation form and changes nothing; the RFC 8058 POST publishes the change', async () => {
    // A mail of its own, so it needs no other test to have run first.
    await publishMail({ user: 'u-unsubscribe' });
    const [mail] = forUser(await sendsUntil((r) => forUser(r, 'u-unsubscribe').length > 0), 'u-unsubscribe');
    const link = /^<([^>]+)>/.exec(mail?.headers['List-Unsubscribe'] ?? '')?.[1] ?? '';
    assert.ok(link.startsWith(endpoint()));

    const page = await fetch(link);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /<form method="post" action="\/unsubscribe\?token&#x3D;k1\./);
    assert.match(html, /edit-user-talk/);

    const otherCategory = `${endpoint()}?token=${tokenFor('u-unsubscribe', 'page-linked')}`;
    assert.equal((await fetch(otherCategory)).status, 200);

    const posted = await fetch(link, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=One-Click',
    });
    assert.equal(posted.status, 200);
    const changes = await preferenceChanges((r) => r.some((c) => c.user_id === 'u-unsubscribe'));
    // The GETs (answered before the POST was sent) published nothing.
    assert.deepEqual(
      changes
        .filter((c) => c.user_id === 'u-unsubscribe')
        .map(({ user_id, category, channel, enabled, reason }) => ({
          user_id,
          category,
          channel,
          enabled,
          reason,
        })),
      [
        {
          user_id: 'u-unsubscribe',
          category: 'edit-user-talk',
          channel: 'email',
          enabled: false,
          reason: 'one-click-unsubscribe',
        },
      ],
    );
  });

  test('one-click from a bundle that mixes categories turns off every category it carries, and the body links each', async () => {
    const start = clock;
    const user = 'u-mixed';
    const bundle = { bundle_key: 'activity' };
    await publishMail({ user, dt: start, notification: { ...bundle, category: 'mention' } });
    await publishMail({ user, dt: start + MINUTE, notification: { ...bundle, category: 'edit-user-talk' } });
    await publishMail({ user, dt: start + 2 * MINUTE, notification: { ...bundle, category: 'page-linked' } });
    await eventually(async () => {
      const rows = await sql('SELECT 1 FROM email.pending_items WHERE recipient_id = $1', [user]);
      return rows.length === 2 ? true : undefined;
    }, 'two held notifications');
    clock = start + HOUR + 1_000;
    const mail = forUser(await sendsUntil((r) => forUser(r, user).length >= 2), user).find(
      (m) => m.kind === 'bundle',
    );
    assert.ok(mail, 'the bundle was mailed');
    const link = /^<([^>]+)>/.exec(mail.headers['List-Unsubscribe'] ?? '')?.[1] ?? '';
    const posted = await fetch(link, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=One-Click',
    });
    assert.equal(posted.status, 200);
    // Finding 10: the POST used to turn off the first category only, and the rest kept coming.
    const turnedOff = (r: NotifyPreferenceChange[]) =>
      r
        .filter((c) => c.user_id === user && !c.enabled)
        .map((c) => c.category)
        .sort();
    const changes = await preferenceChanges((r) => turnedOff(r).length >= 2);
    assert.deepEqual(turnedOff(changes), ['edit-user-talk', 'page-linked']);
    assert.match(mail.text, /Unsubscribe from all of these \(edit-user-talk, page-linked\)/);
    const perCategory = [...mail.text.matchAll(/Stop "([^"]+)" email only: (\S+)/g)].map(([, c, url]) => [
      c,
      url,
    ]);
    assert.deepEqual(
      perCategory.map(([c]) => c),
      ['edit-user-talk', 'page-linked'],
    );
    for (const [category, url] of perCategory) {
      const page = await (await fetch(url ?? '')).text();
      assert.match(page, new RegExp(`Stop “${category}” email`));
    }
  });

  test('a tampered, expired or malformed token is refused with a page saying so, and counted', async () => {
    const valid = tokenFor('u-victim', null);
    const tampered = `${valid.slice(0, -2)}${valid.endsWith('AA') ? 'BB' : 'AA'}`;
    const forged = tokenFor('u-victim', null).replace(/^k1\.[^.]+/, (signed) => {
      const claims = JSON.parse(Buffer.from(signed.slice(3), 'base64url').toString());
      return `k1.${Buffer.from(JSON.stringify({ ...claims, u: 'someone-else' })).toString('base64url')}`;
    });
    const expired = tokenFor('u-victim', null, clock - 1);
    const cases = [
      { token: tampered, status: 403, result: 'bad-signature', says: /not valid/ },
      { token: forged, status: 403, result: 'bad-signature', says: /not valid/ },
      { token: expired, status: 403, result: 'expired', says: /expired/ },
      { token: 'garbage', status: 400, result: 'malformed', says: /incomplete/ },
    ];
    for (const { token, status, result, says } of cases) {
      const before = await unsubscribesCounted(result);
      const response = await fetch(`${endpoint()}?token=${encodeURIComponent(token)}`, {
        method: 'POST',
        body: 'List-Unsubscribe=One-Click',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      assert.equal(response.status, status, result);
      assert.match(await response.text(), says);
      assert.equal(await unsubscribesCounted(result), before + 1);
    }
    // A valid request for the same person afterwards: once it is published, the refused ones
    // (answered before it was sent) provably published nothing.
    const ok = await fetch(`${endpoint()}?token=${valid}`, {
      method: 'POST',
      body: 'List-Unsubscribe=One-Click',
    });
    assert.equal(ok.status, 200);
    const changes = await preferenceChanges((r) => r.some((c) => c.user_id === 'u-victim'));
    assert.equal(changes.filter((c) => c.user_id === 'u-victim' || c.user_id === 'someone-else').length, 1);
    assert.equal(changes.find((c) => c.user_id === 'u-victim')?.category, null);
  });
});

describe('the email process', () => {
  after(() => stopServices());

  test('main.ts with EMAIL_SIDES=digest mails and serves unsubscribe', async () => {
    // The in-process side keeps running: its groups carry this file's datacenter (startInProcess),
    // so the process's groups, on topics of their own, never share a member with them.
    const processDc = uniqueDc();
    await applyTestTopicPlan(kafka, processDc, { services: ['email'] });
    const unsubscribe = await freePort();
    const email = await spawnService('email', processDc, {
      EMAIL_SIDES: 'digest',
      DATABASE_SCHEMA: `email_${processDc}`,
      EMAIL_UNSUBSCRIBE_KEYS: KEYS,
      EMAIL_UNSUBSCRIBE_PORT: String(unsubscribe),
      EMAIL_UNSUBSCRIBE_URL: `http://127.0.0.1:${unsubscribe}/unsubscribe`,
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'fatal',
      CONSUMER_SESSION_TIMEOUT: '6s',
    });
    const processPublisher = testPublisher(processDc, 'test');
    try {
      await processPublisher.publish('notify.email', notifyEmail({ user: 'u-process' }));
      const [message] = await readTopic(
        kafka,
        topicFor(processDc, 'notify.email-send'),
        (m) => m.length > 0,
        60_000,
      );
      const mail = await serde.decode('notify.email-send', message?.value as Buffer);
      assert.equal(mail.recipient_id, 'u-process');
      const link = /^<([^>]+)>/.exec(mail.headers['List-Unsubscribe'] ?? '')?.[1] ?? '';
      assert.equal((await fetch(link)).status, 200);
      const metrics = await (await fetch(`http://127.0.0.1:${email.port}/metrics`)).text();
      assert.match(metrics, /tidings_email_digest_outcomes_total\{outcome="instant"[^}]*\} 1/);
    } finally {
      await processPublisher.close();
      await email.stop();
      await deleteDcTopics(kafka, processDc);
      await admin.query(`DROP SCHEMA IF EXISTS email_${processDc} CASCADE`);
    }
  });
});
