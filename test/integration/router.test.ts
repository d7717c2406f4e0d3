/**
 * The router process against the real stack, in a datacenter and a Postgres schema of its own:
 * people are materialized from notify.user, events fan out per preferences, and every routing
 * decision shows in the channel topics. Plus the plan of the batch look-up over 100,000 people.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { KafkaMessage } from 'kafkajs';
import pg from 'pg';
import { DEFAULT_DATABASE_URL } from '../../libs/config/common.ts';
import { migrate } from '../../libs/db/migrate.ts';
import { createPool } from '../../libs/db/pool.ts';
import { HEADER } from '../../libs/kafka/record-headers.ts';
import { dlqTopic, topicFor } from '../../libs/kafka/topics.ts';
import type { PublishItem } from '../../libs/publish/publish.ts';
import type { StreamName } from '../../libs/schemas/catalog.ts';
import { createSerde } from '../../libs/schemas/serde.ts';
import type { Notification, RecordInput } from '../../libs/schemas/types.generated.ts';
import { notificationId } from '../../services/router/notification-id.ts';
import { BATCH_LOOKUP, throttleParams, typeVolumeParams } from '../../services/router/store.ts';
import {
  applyTestTopicPlan,
  deleteDcTopics,
  eventually,
  quietLog,
  REGISTRY_URL,
  readTopic,
  type ServiceProcess,
  spawnService,
  stopServices,
  testKafka,
  testPublisher,
  uniqueDc,
  untilCommitted,
  withAdmin,
} from './harness.ts';

const HOUR = 3_600_000;
const DAY = 86_400_000;
const MIGRATIONS = join(import.meta.dirname, '..', '..', 'services', 'router', 'migrations');
const CHANNELS = ['notify.web', 'notify.email', 'notify.push'] as const;

const kafka = testKafka('eqiad');
const serde = createSerde({ registryUrl: REGISTRY_URL });
const admin = new pg.Pool({ connectionString: DEFAULT_DATABASE_URL, max: 2 });
const dc = uniqueDc();
const schema = `router_${dc}`;
const publisher = testPublisher(dc, 'test');
let router: ServiceProcess | undefined;

/** Not waited for: the restart test kills it while it is still working through a backlog. */
async function startRouter(): Promise<void> {
  router = await spawnService('router', dc, {
    DATABASE_SCHEMA: schema,
    LOG_LEVEL: 'fatal',
    CHECKPOINT_INTERVAL: '500ms',
    // A killed member holds its partitions until its session expires; keep that short here.
    CONSUMER_SESSION_TIMEOUT: '6s',
    ROUTER_CHATTY_CAP: '15000',
  });
}

before(async () => {
  await applyTestTopicPlan(kafka, dc, { services: ['router'] });
  await startRouter();
});

after(async () => {
  await stopServices();
  await publisher.close();
  await deleteDcTopics(kafka, dc);
  await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await admin.end();
});

/** The hour window of event time that throttles and the chatty guard count in, for this run. */
const hourStart = Math.floor(Date.now() / HOUR) * HOUR;

function user(id: string, fields: Partial<RecordInput<'notify.user'>> = {}): PublishItem {
  return {
    stream: 'notify.user',
    record: { user_id: id, email: `${id}@example.org`, last_active: Date.now(), ...fields },
  };
}

function event(
  id: string,
  category: string,
  recipients: string[],
  fields: Partial<RecordInput<'notify.event'>> = {},
): RecordInput<'notify.event'> {
  return { event_id: id, type: category, category, recipients, meta: { dt: hourStart + 1_000 }, ...fields };
}

async function sql<T extends pg.QueryResultRow>(text: string, params: unknown[] = []): Promise<T[]> {
  return (await admin.query<T>(text.replaceAll('router.', `${schema}.`), params)).rows;
}

async function endOffsets(topic: string): Promise<Map<number, number>> {
  return withAdmin(kafka, async (a) => {
    const offsets = await a.fetchTopicOffsets(topic);
    return new Map(offsets.map((p) => [p.partition, Number(p.high)]));
  });
}

/** Every event published so far is handled and committed: its notifications are all in Kafka. */
async function drained(): Promise<void> {
  await untilCommitted(
    kafka,
    'router',
    [topicFor(dc, 'notify.event')],
    'the router to commit every event',
    60_000,
  );
}

async function readAll(topic: string): Promise<KafkaMessage[]> {
  const total = [...(await endOffsets(topic)).values()].reduce((a, b) => a + b, 0);
  if (total === 0) return [];
  return readTopic(kafka, topic, (m) => m.length >= total, 60_000);
}

type Delivered = { channel: string; key: string; notification: Notification; dt: number; value: unknown };

async function deliveries(): Promise<Delivered[]> {
  const out: Delivered[] = [];
  for (const stream of CHANNELS) {
    for (const m of await readAll(topicFor(dc, stream))) {
      const value = (await serde.decode(stream as StreamName, m.value!)) as {
        notification: Notification;
        meta: { dt: number };
      };
      out.push({
        channel: stream.slice('notify.'.length),
        key: m.key!.toString(),
        notification: value.notification,
        dt: value.meta.dt,
        value,
      });
    }
  }
  return out;
}

const of = (all: Delivered[], eventId: string) => all.filter((d) => d.notification.event_id === eventId);
const channelsOf = (all: Delivered[], eventId: string, recipient: string) =>
  of(all, eventId)
    .filter((d) => d.notification.recipient_id === recipient)
    .map((d) => d.channel)
    .sort();

async function usersPresent(ids: readonly string[]): Promise<void> {
  await eventually(
    async () => {
      const [row] = await sql<{ n: number }>(
        'SELECT count(*)::int AS n FROM router.users WHERE user_id = ANY($1)',
        [ids],
      ).catch(() => [{ n: -1 }]);
      return row?.n === ids.length ? true : undefined;
    },
    `${ids.length} users materialized`,
    60_000,
  );
}

const PEOPLE = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'];

describe('router', () => {
  test('users published to notify.user are materialized with their preferences', async () => {
    await publisher.publishMany([
      user('alice', {
        locale: 'de',
        timezone: 'Europe/Berlin',
        preferences: [{ category: 'page-linked', channel: 'web', enabled: false }],
      }),
      user('bob', { muted_agents: ['troll'] }),
      user('carol', { preferences: [{ category: 'mention', channel: 'email', enabled: false }] }),
      user('dave', { last_active: Date.now() - 60 * DAY }),
      user('erin'),
      user('frank'),
    ]);
    await usersPresent(PEOPLE);
    const [alice] = await sql<{ locale: string; timezone: string; email: string }>(
      "SELECT locale, timezone, email FROM router.users WHERE user_id = 'alice'",
    );
    assert.deepEqual(alice, { locale: 'de', timezone: 'Europe/Berlin', email: 'alice@example.org' });
    const [carol] = await sql<{ preferences: unknown }>(
      "SELECT preferences FROM router.users WHERE user_id = 'carol'",
    );
    assert.deepEqual(carol?.preferences, [{ category: 'mention', channel: 'email', enabled: false }]);
  });

  test('an event fans out per preferences, keyed by recipient, with deterministic ids and meta.dt', async () => {
    await publisher.publish('notify.event', event('e-fan', 'mention', ['alice', 'carol'], { agent: null }));
    await drained();
    const all = await deliveries();
    assert.deepEqual(channelsOf(all, 'e-fan', 'alice'), ['email', 'push', 'web']);
    assert.deepEqual(channelsOf(all, 'e-fan', 'carol'), ['push', 'web'], 'carol turned mention email off');
    for (const d of of(all, 'e-fan')) {
      const recipient = d.notification.recipient_id;
      assert.equal(d.key, recipient);
      assert.equal(d.dt, hourStart + 1_000);
      assert.equal(
        d.notification.notification_id,
        notificationId('e-fan', recipient, d.channel as 'web' | 'email' | 'push'),
      );
    }
    const aliceWeb = of(all, 'e-fan').find((d) => d.notification.recipient_id === 'alice')!;
    assert.deepEqual([aliceWeb.notification.locale, aliceWeb.notification.timezone], ['de', 'Europe/Berlin']);
  });

  test('an event replayed after it was processed does not fan out again', async () => {
    const before = of(await deliveries(), 'e-fan').length;
    await publisher.publish('notify.event', event('e-fan', 'mention', ['alice', 'carol']));
    await drained();
    assert.equal(of(await deliveries(), 'e-fan').length, before);
    const [row] = await sql(
      "SELECT count(*)::int AS n FROM router.processed_events WHERE event_id = 'e-fan'",
    );
    assert.deepEqual(row, { n: 1 });
  });

  test('an event of an unknown category goes to the DLQ naming its source', async () => {
    await publisher.publish('notify.event', event('e-unknown', 'no-such-category', ['alice']));
    const [dead] = await readTopic(kafka, dlqTopic(dc, 'notify.event', 'router'), (m) => m.length >= 1);
    assert.ok(dead);
    assert.equal(dead.headers?.[HEADER.errorKind]?.toString(), 'rejected:unknown-category');
    await drained();
    assert.equal(of(await deliveries(), 'e-unknown').length, 0);
  });

  test('muted agent, channel off and sunset user get no email; transactional mail still goes', async () => {
    const troll = { id: 'troll', name: 'Troll' };
    await publisher.publishMany([
      { stream: 'notify.event', record: event('e-muted', 'mention', ['bob'], { agent: troll }) },
      { stream: 'notify.event', record: event('e-muted-login', 'login-fail', ['bob'], { agent: troll }) },
      { stream: 'notify.event', record: event('e-sunset', 'mention', ['dave']) },
      { stream: 'notify.event', record: event('e-sunset-reset', 'password-reset', ['dave']) },
    ]);
    await drained();
    const all = await deliveries();
    assert.deepEqual(channelsOf(all, 'e-muted', 'bob'), [], 'bob muted the agent');
    assert.deepEqual(channelsOf(all, 'e-muted-login', 'bob'), ['email'], 'a mute never hides account mail');
    assert.deepEqual(channelsOf(all, 'e-sunset', 'dave'), ['push', 'web'], 'dave is inactive for 60 days');
    assert.deepEqual(
      channelsOf(all, 'e-sunset-reset', 'dave'),
      ['email'],
      'transactional mail is never sunset',
    );
  });

  test('a tombstone erases the user and later events for them are skipped', async () => {
    await publisher.publish('notify.preference-change', {
      user_id: 'erin',
      channel: 'email',
      category: null,
      enabled: false,
      reason: 'one-click-unsubscribe',
    });
    await eventually(
      async () =>
        (await sql("SELECT 1 FROM router.preference_changes WHERE user_id = 'erin'")).length
          ? true
          : undefined,
      'the preference change materialized',
    );
    await publisher.tombstone('notify.user', 'erin');
    // What is left of erin is a marker that older records of hers lose to.
    await eventually(
      async () =>
        (await sql("SELECT 1 FROM router.users WHERE user_id = 'erin' AND erased")).length ? true : undefined,
      'erin erased',
    );
    assert.deepEqual(await sql("SELECT email, locale FROM router.users WHERE user_id = 'erin'"), [
      { email: null, locale: null },
    ]);
    assert.deepEqual(await sql("SELECT 1 FROM router.preference_changes WHERE user_id = 'erin'"), []);
    await publisher.publish('notify.event', event('e-erased', 'mention', ['erin', 'alice']));
    await drained();
    const all = await deliveries();
    assert.deepEqual(channelsOf(all, 'e-erased', 'erin'), []);
    assert.deepEqual(channelsOf(all, 'e-erased', 'alice'), ['email', 'push', 'web']);
  });

  test('over the throttle, the excess is folded into the web inbox only', async () => {
    // mention: at most 20 per recipient and hour. One key: one partition, batches in order.
    await publisher.publishMany(
      Array.from({ length: 25 }, (_, i) => ({
        stream: 'notify.event' as const,
        record: event(`e-throttle-${i}`, 'mention', ['frank']),
        key: 'throttle',
      })),
    );
    await drained();
    const frank = (await deliveries()).filter(
      (d) => d.notification.recipient_id === 'frank' && d.notification.event_id.startsWith('e-throttle-'),
    );
    const count = (channel: string) => frank.filter((d) => d.channel === channel).length;
    assert.deepEqual([count('web'), count('email'), count('push')], [25, 20, 20]);
    const folded = frank.filter((d) => d.channel === 'web' && (d.value as { folded: boolean }).folded);
    assert.equal(folded.length, 5);
  });

  test('a chatty event type is held on the hold topic instead of fanned out', async () => {
    // Cap 15,000 recipients per type and hour: the third event of 6,000 passes it.
    const crowd = (n: number) => ['alice', ...Array.from({ length: 5_999 }, (_, i) => `nobody-${n}-${i}`)];
    await publisher.publishMany(
      [1, 2, 3].map((n) => ({
        stream: 'notify.event' as const,
        record: event(`e-flood-${n}`, 'welcome', crowd(n), { type: 'flood' }),
        key: 'flood',
      })),
    );
    const held = await readTopic(kafka, `${topicFor(dc, 'notify.event')}.router.held`, (m) => m.length >= 1);
    const heldEvent = await serde.decode('notify.event', held[0]!.value!);
    assert.equal(heldEvent.event_id, 'e-flood-3');
    await drained();
    const all = await deliveries();
    assert.deepEqual(
      ['e-flood-1', 'e-flood-2', 'e-flood-3'].map((id) => channelsOf(all, id, 'alice').length),
      [1, 1, 0],
    );
  });

  test('one event with 10,000 recipients fans out completely', async () => {
    const crowd = Array.from({ length: 10_000 }, (_, i) => `crowd-${i}`);
    await publisher.publishMany(crowd.map((id) => user(id)));
    await usersPresent(crowd);
    await publisher.publish('notify.event', event('e-crowd', 'edit-user-talk', crowd));
    await drained();
    const delivered = of(await deliveries(), 'e-crowd');
    for (const channel of ['web', 'email', 'push']) {
      const recipients = new Set(delivered.filter((d) => d.channel === channel).map((d) => d.key));
      assert.equal(recipients.size, 10_000, `${channel}: every recipient once`);
    }
    assert.equal(delivered.length, 30_000);
  });

  test('every decision is counted by outcome and reason in /metrics', async () => {
    const metrics = await (await fetch(`http://127.0.0.1:${router!.port}/metrics`)).text();
    for (const series of [
      /tidings_router_events_total\{outcome="routed",reason=""[^}]*\} \d/,
      /tidings_router_events_total\{outcome="skipped",reason="duplicate-event"[^}]*\} [1-9]/,
      /tidings_router_events_total\{outcome="dead-letter",reason="unknown-category"[^}]*\} [1-9]/,
      /tidings_router_events_total\{outcome="held",reason="chatty-type"[^}]*\} [1-9]/,
      /tidings_router_deliveries_total\{channel="email",outcome="skipped",reason="email-sunset"[^}]*\} [1-9]/,
      /tidings_router_deliveries_total\{channel="web",outcome="skipped",reason="agent-muted"[^}]*\} [1-9]/,
      /tidings_router_deliveries_total\{channel="email",outcome="skipped",reason="channel-off"[^}]*\} [1-9]/,
      /tidings_router_deliveries_total\{channel="web",outcome="folded",reason=""[^}]*\} [1-9]/,
      /tidings_router_deliveries_total\{channel="push",outcome="skipped",reason="unknown-recipient"[^}]*\} [1-9]/,
    ]) {
      assert.match(metrics, series);
    }
  });

  test('killed mid-stream and restarted, the router loses nothing; a re-emitted record is byte-identical', async () => {
    const crowd = Array.from({ length: 4 }, (_, i) => `crowd-${i}`);
    const events = Array.from({ length: 5_000 }, (_, i) =>
      event(`e-restart-${i}`, 'welcome', crowd, { type: `restart-${i % 10}` }),
    );
    // The backlog is published while the router is down, so the kill below lands in the middle of
    // it however fast this machine routes.
    await router!.stop();
    await publisher.publishMany(events.map((record) => ({ stream: 'notify.event' as const, record })));
    await startRouter();
    const routed = async () =>
      (
        await sql<{ n: number }>(
          "SELECT count(*)::int AS n FROM router.processed_events WHERE event_id LIKE 'e-restart-%'",
        )
      )[0]!.n;
    for (let n = 0; n === 0; n = await routed()) await new Promise((r) => setTimeout(r, 5));
    await router!.stop('SIGKILL');
    const atKill = await routed();
    assert.ok(atKill < events.length, `the kill came before every event was routed (${atKill})`);

    await startRouter();
    await drained();
    const copies = new Map<string, Buffer[]>();
    for (const m of await readAll(topicFor(dc, 'notify.web'))) {
      const web = await serde.decode('notify.web', m.value!);
      if (!web.notification.event_id.startsWith('e-restart-')) continue;
      copies.set(web.notification.notification_id, [
        ...(copies.get(web.notification.notification_id) ?? []),
        m.value!,
      ]);
    }
    assert.equal(copies.size, events.length * crowd.length, 'every notification reached notify.web');
    for (const [id, values] of copies) {
      for (const value of values) assert.ok(value.equals(values[0]!), `${id}: copies are identical`);
    }
  });
});

describe('the batch look-up over 100,000 people', () => {
  const planSchema = `router_plan_${randomBytes(4).toString('hex')}`;
  const pool = createPool({ url: DEFAULT_DATABASE_URL, schema: planSchema, applicationName: 'router-test' });

  after(async () => {
    await pool.query(`DROP SCHEMA IF EXISTS ${planSchema} CASCADE`);
    await pool.end();
  });

  test('the batch look-up probes indexes: no sequential scan of a big table', async () => {
    await migrate(pool, { schema: planSchema, dir: MIGRATIONS, log: quietLog });
    await pool.query(`
      INSERT INTO users (user_id, email, locale, timezone, last_active, email_frequency, preferences, record_dt)
        SELECT 'u' || i, 'u' || i || '@example.org', 'en', 'UTC', now(), 'instant',
               '[{"category": "mention", "channel": "email", "enabled": false}]', now()
        FROM generate_series(1, 100000) i;
      INSERT INTO preference_changes (user_id, channel, category, enabled, changed_at, reason)
        SELECT 'u' || i, 'email', NULL, false, now(), 'one-click-unsubscribe' FROM generate_series(1, 100000, 3) i;
      INSERT INTO email_frequency_changes (user_id, email_frequency, changed_at)
        SELECT 'u' || i, 'daily', now() FROM generate_series(1, 100000, 7) i;
      INSERT INTO processed_events (event_id) SELECT 'e' || i FROM generate_series(1, 100000) i;
      INSERT INTO throttle_counts (recipient_id, category, window_start, count)
        SELECT 'u' || i, 'mention', to_timestamp(${hourStart / 1000}), 1 FROM generate_series(1, 100000) i;
      INSERT INTO type_volume (event_type, window_start, fan_out)
        SELECT 't' || i, to_timestamp(${hourStart / 1000} - i * 3600), i FROM generate_series(1, 20000) i;
      ANALYZE;
    `);
    const ids = Array.from({ length: 500 }, (_, i) => `u${i * 199 + 1}`);
    const params = [
      ids.map((id) => id.replace('u', 'e')),
      ids,
      ...throttleParams(
        ids.map((recipientId) => ({ recipientId, category: 'mention', windowStart: hourStart })),
      ),
      ...typeVolumeParams(['t1', 't2', 'mention'].map((type) => ({ type, windowStart: hourStart }))),
    ];
    const { rows } = await pool.query<{ 'QUERY PLAN': unknown }>(
      `EXPLAIN (FORMAT JSON) ${BATCH_LOOKUP}`,
      params,
    );
    const plan = JSON.stringify(rows[0]?.['QUERY PLAN']);
    const seqScans = [...plan.matchAll(/"Node Type":"Seq Scan"[^}]*?"Relation Name":"(\w+)"/g)].map(
      (m) => m[1],
    );
    assert.deepEqual(seqScans, [], plan);
  });
});
