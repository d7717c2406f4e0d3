/**
 * The email stages of the delivery trail on the real stack: the email service as a process (both
 * sides), test/smtp-sink as the relay, notify.email records as the router would write them. Every
 * choice of the digest side (sent at once, bundled, queued for a digest, dropped because read on the
 * web) and of the sender (accepted, deferred then accepted, suppressed, bounced, resent after a
 * crash) is told by `tidings trace`, and a replay of both sides' input leaves every story as it was.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { DEFAULT_DATABASE_URL } from '../../libs/config/common.ts';
import { topicFor } from '../../libs/kafka/topics.ts';
import { addressHash } from '../../libs/mail/verp.ts';
import type { RecordInput } from '../../libs/schemas/types.generated.ts';
import { sendIdOf } from '../../services/email/message.ts';
import { type SmtpSink, startSmtpSink } from '../smtp-sink/sink.ts';
import {
  applyTestTopicPlan,
  BROKERS,
  deleteDcTopics,
  eventually,
  freePort,
  retryDelaysVar,
  runTidings,
  type ServiceProcess,
  startService,
  type TracedStory,
  testKafka,
  testPublisher,
  traceStories,
  uniqueDc,
  untilCommitted,
} from './harness.ts';

const kafka = testKafka('eqiad');
const db = new pg.Pool({ connectionString: DEFAULT_DATABASE_URL, max: 1 });
const dc = uniqueDc();
const schema = `email_${dc}`;
const RETRY_DELAYS_MS = [300, 1_000, 2_000];
const publisher = testPublisher(dc, 'test');
const run = randomBytes(4).toString('hex');
const EVENT = `ev-${run}`;
/** The second notification of bob's bundle key: an event of its own. */
const LATER_EVENT = `ev-${run}-later`;
const BUNDLE_KEY = 'talk:User_talk:Bob';
let sink: SmtpSink;
let email: ServiceProcess | undefined;
let greylisted = 0;

async function startEmail(): Promise<void> {
  const unsubscribe = await freePort();
  email = await startService(
    'email',
    dc,
    {
      DATABASE_SCHEMA: schema,
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'fatal',
      CONSUMER_SESSION_TIMEOUT: '6s',
      RETRY_DELAYS: retryDelaysVar(RETRY_DELAYS_MS),
      EMAIL_UNSUBSCRIBE_KEYS: `k1:${randomBytes(32).toString('base64')}`,
      EMAIL_UNSUBSCRIBE_PORT: String(unsubscribe),
      EMAIL_UNSUBSCRIBE_URL: `http://127.0.0.1:${unsubscribe}/unsubscribe`,
      EMAIL_BUNDLE_INTERVAL: '2s',
      EMAIL_DIGEST_HOUR: '8',
      EMAIL_DUE_POLL_INTERVAL: '200ms',
      SMTP_URL: `smtp://${sink.host}:${sink.port}`,
      SMTP_TIMEOUT: '5s',
      EMAIL_SMTP_PROBE_INTERVAL: '300ms',
      VERP_DOMAIN: 'bounces.example.org',
      VERP_KEYS: `1:${randomBytes(32).toString('base64')}`,
    },
    { readyTimeoutMs: 90_000 },
  );
}

before(async () => {
  await applyTestTopicPlan(kafka, dc, { services: ['email'], retryDelaysMs: RETRY_DELAYS_MS });
  sink = await startSmtpSink({
    refuseRecipient(address) {
      if (address.startsWith('gus@')) return [550, '5.1.1 <gus@example.org>: no such user'];
      // Greylisting: the first attempt is turned away, the retry gets through.
      if (address.startsWith('fay@') && greylisted++ === 0) return [451, '4.7.1 greylisted, try again later'];
      return undefined;
    },
  });
  await startEmail();
});

after(async () => {
  await email?.stop();
  await sink.stop();
  await publisher.close();
  await deleteDcTopics(kafka, dc);
  await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await db.end();
});

const nid = (user: string, event = EVENT) => `n-${event}-${user}`;

function mail(
  user: string,
  fields: {
    event?: string;
    frequency?: 'instant' | 'daily';
    bundleKey?: string;
    dt?: number;
    timezone?: string;
  } = {},
): RecordInput<'notify.email'> {
  const event = fields.event ?? EVENT;
  return {
    meta: { dt: fields.dt ?? Date.now() },
    email: `${user}@example.org`,
    email_frequency: fields.frequency ?? 'instant',
    transactional: false,
    delivery: 'at_least_once',
    notification: {
      notification_id: nid(user, event),
      event_id: event,
      event_type: 'edit-user-talk',
      category: 'edit-user-talk',
      recipient_id: user,
      agent: { id: 'a1', name: 'Alice' },
      title: `A message for ${user}`,
      url: `https://wiki.example.org/wiki/User_talk:${user}`,
      extra: {},
      priority: 3,
      bundle_key: fields.bundleKey ?? null,
      locale: 'en',
      timezone: fields.timezone ?? 'UTC',
    },
  };
}

const tidings = (...args: string[]) => runTidings('--brokers', BROKERS.eqiad.join(','), '--dc', dc, ...args);
const trace = (...selector: string[]) => traceStories(dc, ...selector);

const byRecipient = (stories: TracedStory[]) => new Map(stories.map((s) => [s.recipient_id, s]));
const steps = (story: TracedStory | undefined) => story?.steps.map((s) => `${s.stage} ${s.outcome}`);

/** The event's stories once every one of `users` has come to `done`. */
async function storiesOnceDone(
  event: string,
  users: readonly string[],
  done: (story: TracedStory) => boolean,
): Promise<Map<string, TracedStory>> {
  return eventually(
    async () => {
      const stories = byRecipient(await trace('--event', event));
      return users.every((u) => stories.has(u) && done(stories.get(u)!)) ? stories : undefined;
    },
    `the stories of ${users.join(', ')} to be told`,
    120_000,
  );
}

describe('delivery trail from the email service', () => {
  test('each digest and sender decision is traced, and a replay tells every story as before', async () => {
    // eve's address is suppressed; hal's mail was claimed by an attempt that crashed before the
    // relay answered (its ledger row says 'sending'), so the sender sends it again.
    await publisher.publish('notify.suppression', {
      meta: { dt: Date.now() },
      address_hash: addressHash('eve@example.org'),
      address: 'eve@example.org',
      reason: 'hard_bounce',
      until: null,
      detail: '550 5.1.1 no such user',
    });
    await eventually(async () => {
      const { rows } = await db.query(`SELECT 1 FROM ${schema}.suppressions WHERE address_hash = $1`, [
        addressHash('eve@example.org'),
      ]);
      return rows.length === 1 ? true : undefined;
    }, 'the suppression to be materialized');
    await db.query(
      `INSERT INTO ${schema}.sent_messages (send_id, recipient_id, state) VALUES ($1, 'hal', 'sending')`,
      [sendIdOf([nid('hal')])],
    );

    const dt = Date.now();
    await publisher.publishMany(
      [
        mail('ann'),
        mail('bob', { bundleKey: BUNDLE_KEY, dt }),
        // Within the bundle interval after bob's first mail: held for the bundle.
        mail('bob', { event: LATER_EVENT, bundleKey: BUNDLE_KEY, dt: dt + 500 }),
        mail('cat', { frequency: 'daily', timezone: 'Europe/Berlin' }),
        mail('dan', { frequency: 'daily' }),
        mail('eve'),
        mail('fay'),
        mail('gus'),
        mail('hal'),
      ].map((record) => ({ stream: 'notify.email' as const, record })),
    );

    // dan reads it on the web while it waits for his digest.
    await storiesOnceDone(EVENT, ['dan'], (s) => s.state.kind === 'pending');
    await publisher.publish('notify.inbox-state', {
      user_id: 'dan',
      action: 'read',
      notification_ids: ['dan-web-notification'],
      event_ids: [EVENT],
      up_to: null,
    });

    // Where each story ends; a deferral is pending on the way to fay's acceptance.
    const ends: Record<string, string> = {
      ann: 'delivered',
      bob: 'delivered',
      cat: 'pending',
      dan: 'stopped',
      eve: 'stopped',
      fay: 'delivered',
      gus: 'stopped',
      hal: 'delivered',
    };
    const users = Object.keys(ends);
    const stories = await storiesOnceDone(EVENT, users, (s) => s.state.kind === ends[s.recipient_id]);
    const summaries = Object.fromEntries(users.map((u) => [u, stories.get(u)!.state.summary]));
    const cat = stories.get('cat')!.steps.at(-1)!;
    assert.deepEqual(summaries, {
      ann: 'delivered (accepted)',
      bob: 'delivered (accepted)',
      cat: `pending: queued until ${cat.dueAt} (the 08:00 daily digest, Europe/Berlin)`,
      dan: 'not delivered: dropped, read-on-web',
      eve: 'not delivered: suppressed, address-suppressed',
      fay: 'delivered (accepted)',
      gus: 'not delivered: bounced, relay-refused',
      hal: 'delivered (resent)',
    });
    assert.equal(cat.reason, 'daily-digest');
    assert.deepEqual(steps(stories.get('ann')), ['digest sent_now', 'sender accepted']);
    // The relay's own reply, for on-call.
    assert.match(stories.get('ann')!.steps[1]!.detail ?? '', /^250 /);
    assert.deepEqual(steps(stories.get('dan')), ['digest queued', 'digest dropped']);
    assert.deepEqual(steps(stories.get('eve')), ['digest sent_now', 'sender suppressed']);
    // The greylisted attempt is told with the relay's answer, and the retry's acceptance after it.
    const fay = stories.get('fay')!;
    assert.deepEqual(steps(fay), ['digest sent_now', 'sender deferred', 'sender accepted']);
    assert.equal(fay.steps[1]!.reason, 'smtp-transient');
    assert.match(fay.steps[1]!.detail ?? '', /greylisted/);
    assert.deepEqual(steps(stories.get('gus')), ['digest sent_now', 'sender bounced']);
    assert.match(stories.get('gus')!.steps[1]!.detail ?? '', /no such user/);
    assert.deepEqual(steps(stories.get('hal')), ['digest sent_now', 'sender resent']);

    // bob's second notification waited for the bundle and went out in it.
    const [bundled] = await storiesOnceDone(LATER_EVENT, ['bob'], (s) => s.state.kind === 'delivered').then(
      (m) => [...m.values()],
    );
    assert.deepEqual(steps(bundled), ['digest bundled', 'sender accepted']);
    assert.equal(bundled!.steps[0]!.ref, BUNDLE_KEY);
    assert.equal(bundled!.steps[1]!.ref, sendIdOf([nid('bob', LATER_EVENT)]));
    assert.equal(bundled!.state.summary, 'delivered (accepted)');
    // The resend really reached the relay; the suppressed and the bounced mail did not.
    const mailed = new Set(sink.received.flatMap((m) => m.rcptTo));
    assert.ok(mailed.has('hal@example.org'));
    assert.ok(!mailed.has('eve@example.org') && !mailed.has('gus@example.org'));

    // A replay: both sides see every notification and every message again.
    const before = { first: await trace('--event', EVENT), later: await trace('--event', LATER_EVENT) };
    await email?.stop();
    for (const [group, stream] of [
      ['email', 'notify.email'],
      ['email-sender', 'notify.email-send'],
      ['email-web-reads', 'notify.inbox-state'],
    ] as const) {
      const replay = await tidings(
        'replay',
        '--group',
        group,
        '--topic',
        topicFor(dc, stream),
        '--since',
        new Date(dt - 60_000).toISOString(),
        '--rollback-file',
        join(tmpdir(), `tidings-rollback-${dc}-${group}.json`),
        '--execute',
      );
      assert.equal(replay.status, 0, replay.stderr);
    }
    await startEmail();
    for (const [group, stream] of [
      ['email', 'notify.email'],
      ['email-sender', 'notify.email-send'],
      ['email-web-reads', 'notify.inbox-state'],
    ] as const)
      await untilCommitted(kafka, group, [topicFor(dc, stream)], `${group} to commit the replay`, 60_000);
    assert.deepEqual(
      { first: await trace('--event', EVENT), later: await trace('--event', LATER_EVENT) },
      before,
    );
  });
});
