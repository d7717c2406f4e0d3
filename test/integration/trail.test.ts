/**
 * The delivery trail on the real stack: the router process writes one notify.status record per
 * decision (emitted, or skipped with its reason), and `tidings trace` tells each notification's story
 * from it; a replay of the same events adds no step to any story.
 */
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { DEFAULT_DATABASE_URL } from '../../libs/config/common.ts';
import { topicFor } from '../../libs/kafka/topics.ts';
import type { RecordInput } from '../../libs/schemas/types.generated.ts';
import { notificationId } from '../../services/router/notification-id.ts';
import {
  applyTestTopicPlan,
  BROKERS,
  deleteDcTopics,
  eventually,
  runTidings,
  spawnService,
  stopServices,
  type TracedStory,
  testKafka,
  testPublisher,
  traceStories,
  uniqueDc,
  untilCommitted,
} from './harness.ts';

const DAY = 86_400_000;
const kafka = testKafka('eqiad');
const db = new pg.Pool({ connectionString: DEFAULT_DATABASE_URL, max: 1 });
const dc = uniqueDc();
const schema = `router_${dc}`;
const publisher = testPublisher(dc, 'test');
function startRouter() {
  return spawnService('router', dc, {
    DATABASE_SCHEMA: schema,
    LOG_LEVEL: 'fatal',
    CONSUMER_SESSION_TIMEOUT: '6s',
    // One name per switch: the router produces no push at all, and says so in the trail.
    ROUTER_EMIT_PUSH: 'false',
    ROUTER_CHATTY_CAP: '25',
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
  await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await db.end();
});

const now = Date.now();
const user = (id: string, fields: Partial<RecordInput<'notify.user'>> = {}) => ({
  stream: 'notify.user' as const,
  record: { user_id: id, email: `${id}@example.org`, last_active: now, ...fields },
});
const event = (
  id: string,
  category: string,
  recipients: string[],
  fields: Partial<RecordInput<'notify.event'>> = {},
) => ({
  stream: 'notify.event' as const,
  record: { event_id: id, type: category, category, recipients, meta: { dt: now }, ...fields },
});

const trace = (...selector: string[]) => traceStories(dc, ...selector);

/** The CLI against this test's datacenter on the eqiad cluster. */
const tidings = (...args: string[]) => runTidings('--brokers', BROKERS.eqiad.join(','), '--dc', dc, ...args);

const summary = (stories: TracedStory[]) =>
  Object.fromEntries(stories.map((s) => [`${s.recipient_id} ${s.channel}`, s.state.summary]));

async function routed(): Promise<void> {
  await untilCommitted(
    kafka,
    'router',
    [topicFor(dc, 'notify.event')],
    'the router to commit every event',
    60_000,
  );
}

describe('delivery trail from the router', () => {
  test('each router decision is traced with its reason', async () => {
    await publisher.publishMany([
      user('ann'),
      user('ben', { email: null }),
      user('cat', { last_active: now - 90 * DAY }),
      user('dan', { muted_agents: ['troll'] }),
      user('eve', { preferences: [{ category: 'user-rights', channel: 'email', enabled: false }] }),
    ]);
    await eventually(
      async () => {
        const { rows } = await db
          .query(`SELECT count(*)::int AS n FROM ${schema}.users`)
          .catch(() => ({ rows: [{ n: 0 }] }));
        return rows[0]?.n === 5 ? true : undefined;
      },
      'five people materialized',
      60_000,
    );
    await publisher.publishMany([
      event('e-rights', 'user-rights', ['ann', 'ben', 'cat', 'eve', 'ghost']),
      event('e-mention', 'mention', ['dan'], { agent: { id: 'troll', name: 'Troll' } }),
      event('e-push', 'edit-user-talk', ['ann']),
      event('e-old', 'user-rights', ['ann'], { expires_at: now - 1_000 }),
    ]);
    await routed();
    // A chatty type: more recipients than the cap (25) in its window are held back.
    const crowd = ['ann', ...Array.from({ length: 25 }, (_, i) => `fan-${i}`)];
    await publisher.publishMany([event('e-chatty', 'thank-you-edit', crowd, { type: 'bot-flood' })]);
    await routed();

    const inFlight = 'in flight: emitted, the next stage has not reported yet';
    // user-rights: push is off unless a person turns it on.
    const pushOff = 'not delivered: skipped, channel-off';
    assert.deepEqual(summary(await trace('--event', 'e-rights')), {
      'ann web': inFlight,
      'ann email': inFlight,
      'ann push': pushOff,
      'ben web': inFlight,
      'ben email': 'not delivered: skipped, no-email-address',
      'ben push': pushOff,
      'cat web': inFlight,
      'cat email': 'not delivered: skipped, email-sunset',
      'cat push': pushOff,
      'eve web': inFlight,
      'eve email': 'not delivered: skipped, channel-off',
      'eve push': pushOff,
      'ghost web': 'not delivered: skipped, unknown-recipient',
      'ghost email': 'not delivered: skipped, unknown-recipient',
      'ghost push': 'not delivered: skipped, unknown-recipient',
    });
    assert.deepEqual(summary(await trace('--event', 'e-mention')), {
      'dan web': 'not delivered: skipped, agent-muted',
      'dan email': 'not delivered: skipped, agent-muted',
      'dan push': 'not delivered: skipped, agent-muted',
    });
    const push = await trace('--notification', notificationId('e-push', 'ann', 'push'));
    assert.deepEqual(summary(push), { 'ann push': 'not delivered: skipped, push-disabled' });
    assert.deepEqual(
      new Set(Object.values(summary(await trace('--event', 'e-old')))),
      new Set(['not delivered: skipped, expired']),
    );
    assert.deepEqual(
      new Set(Object.values(summary(await trace('--event', 'e-chatty')))),
      new Set(['pending: held']),
    );

    // --user reads only the person's partition and finds all of their stories.
    const ann = await trace('--user', 'ann');
    assert.deepEqual(
      new Set(ann.map((s) => s.notification_id)),
      new Set([
        notificationId('e-rights', 'ann', 'web'),
        notificationId('e-rights', 'ann', 'email'),
        notificationId('e-push', 'ann', 'web'),
        notificationId('e-push', 'ann', 'email'),
        notificationId('e-push', 'ann', 'push'),
        notificationId('e-rights', 'ann', 'push'),
        notificationId('e-old', 'ann', 'web'),
        notificationId('e-old', 'ann', 'email'),
        notificationId('e-old', 'ann', 'push'),
        notificationId('e-chatty', 'ann', 'web'),
        notificationId('e-chatty', 'ann', 'email'),
        notificationId('e-chatty', 'ann', 'push'),
      ]),
    );
  });

  test('tidings explain re-runs the decision for one person, gate by gate', async () => {
    const run = await tidings(
      '-o',
      'json',
      'explain',
      '--event',
      'e-rights',
      '--user',
      'cat',
      '--database',
      DEFAULT_DATABASE_URL,
      '--router-schema',
      schema,
    );
    assert.equal(run.status, 0, run.stderr);
    const rows = JSON.parse(run.stdout) as { scope: string; gate: string; verdict: string; detail: string }[];
    const verdict = (scope: string, gate: string) =>
      rows.find((r) => r.scope === scope && r.gate === gate)?.verdict;
    assert.equal(verdict('event', 'duplicate-event'), 'closed', 'the event was routed already');
    assert.equal(verdict('event', 'expired'), 'pass');
    assert.equal(verdict('person', 'agent-muted'), 'pass');
    assert.equal(verdict('email', 'no-email-address'), 'pass');
    assert.equal(verdict('email', 'email-sunset'), 'closed');
    assert.equal(verdict('push', 'channel-off'), 'closed');
    assert.deepEqual(
      rows.filter((r) => r.gate === 'decision').map((r) => `${r.scope} ${r.verdict} ${r.detail}`),
      ['web emitted ', 'email skipped email-sunset', 'push skipped channel-off'],
    );
    // The same decision the router took and traced.
    assert.equal(
      summary(await trace('--notification', notificationId('e-rights', 'cat', 'email')))['cat email'],
      'not delivered: skipped, email-sunset',
    );
  });

  test('throttled mail is traced as throttled, the web copy as folded', async () => {
    // mention: at most 20 an hour per person. One key, one partition: the throttle is exact there.
    await publisher.publishMany(
      Array.from({ length: 21 }, (_, i) => ({ ...event(`e-many-${i}`, 'mention', ['ann']), key: 'many' })),
    );
    await routed();
    const many = (await trace('--user', 'ann')).filter((s) =>
      Array.from({ length: 21 }, (_, i) => notificationId(`e-many-${i}`, 'ann', s.channel as 'web')).includes(
        s.notification_id!,
      ),
    );
    const throttled = many.filter((s) => s.state.summary === 'not delivered: skipped, throttled');
    assert.equal(throttled.length, 1, 'one mention over the hourly 20 is throttled');
    assert.equal(throttled[0]!.channel, 'email');
    const eventOf = (s: TracedStory) =>
      Array.from({ length: 21 }, (_, i) => `e-many-${i}`).find(
        (e) => notificationId(e, 'ann', s.channel as 'web') === s.notification_id,
      );
    const web = many.find((s) => s.channel === 'web' && eventOf(s) === eventOf(throttled[0]!));
    assert.equal(web?.steps.at(-1)?.outcome, 'folded');
  });

  test('a replay of every event adds no step to any story', async () => {
    const before = await trace('--user', 'ann');
    await stopServices();
    const replay = await tidings(
      'replay',
      '--group',
      'router',
      '--topic',
      topicFor(dc, 'notify.event'),
      '--since',
      new Date(now - 60_000).toISOString(),
      '--rollback-file',
      join(tmpdir(), `tidings-rollback-${dc}.json`),
      '--execute',
    );
    assert.equal(replay.status, 0, replay.stderr);
    await startRouter();
    await routed();
    // The router saw every event again and skipped each as a duplicate...
    await eventually(
      async () => {
        const tail = await tidings('-o', 'json', 'tail', 'notify.status', '--limit', '1000');
        return tail.stdout.includes('"duplicate-event"') ? true : undefined;
      },
      'the replayed events to reach the router again',
      60_000,
    );
    // ...and every story is told as before.
    assert.deepEqual(await trace('--user', 'ann'), before);
  });
});
