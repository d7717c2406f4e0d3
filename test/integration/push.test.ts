/**
 * services/push as a process against the real stack and the FCM emulator (firebase-admin reaching
 * it through its normal HTTPS path): batching into one push per person per window, multicasts of at
 * most 500 tokens, pooled across partitions, dead-token tombstones, Retry-After, the kill switch, and
 * a crash mid-window, and what push tells the delivery trail of each.
 * Group names are the service's own, not per datacenter: each test stops its process before the next
 * one starts, or a leftover member would be handed the next test's partitions.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { DEFAULT_DATABASE_URL } from '../../libs/config/common.ts';
import { topicFor } from '../../libs/kafka/topics.ts';
import type { Publisher, PublishItem } from '../../libs/publish/publish.ts';
import { type FcmEmulator, startFcmEmulator } from '../fcm-emulator/emulator.ts';
import {
  applyTestTopicPlan,
  createStreamTopics,
  deleteDcTopics,
  eventually,
  groupLag,
  metricValue,
  readTopic,
  retryDelaysVar,
  type ServiceProcess,
  startService,
  streamAndRetryTopics,
  testKafka,
  testPublisher,
  traceStories,
  uniqueDc,
  untilCommitted,
} from './harness.ts';
import { notification, subscription, tokenHash } from './push-fixture.ts';

const kafka = testKafka('eqiad');
const PUSH_RETRY_DELAYS_MS = [200, 400];
const db = new pg.Pool({ connectionString: DEFAULT_DATABASE_URL, max: 2 });
const children = new Set<ChildProcess>();
const cleanups: (() => Promise<void>)[] = [];
let emulator: FcmEmulator;

before(async () => {
  emulator = await startFcmEmulator();
});
after(async () => {
  for (const child of children) child.kill('SIGKILL');
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  await db.end();
  await emulator.close();
});

interface PushProcess extends ServiceProcess {
  dc: string;
  publisher: Publisher;
}

/** A push process of its own datacenter and database schema, ready to consume. */
async function startPush(env: Record<string, string>, pushPartitions = 1): Promise<PushProcess> {
  const dc = uniqueDc();
  const schema = `push_${dc}`;
  await createStreamTopics(
    kafka,
    dc,
    ['notify.push-subscription', 'notify.erasure', 'notify.checkpoint', 'notify.status'],
    2,
  );
  await createStreamTopics(kafka, dc, ['notify.push'], pushPartitions);
  await applyTestTopicPlan(kafka, dc, { services: ['push'], retryDelaysMs: PUSH_RETRY_DELAYS_MS });
  const publisher = testPublisher(dc, 'test');
  cleanups.push(async () => {
    await publisher.close();
    await deleteDcTopics(kafka, dc);
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  });
  return { dc, publisher, ...(await spawnPush(dc, env)) };
}

/** Another push process for a datacenter startPush made, as after a crash. */
async function spawnPush(dc: string, env: Record<string, string>): Promise<ServiceProcess> {
  const push = await startService('push', dc, {
    DATABASE_SCHEMA: `push_${dc}`,
    CONSUMER_SESSION_TIMEOUT: '6s',
    CHECKPOINT_INTERVAL: '500ms',
    RETRY_DELAYS: retryDelaysVar(PUSH_RETRY_DELAYS_MS),
    FCM_PROJECT_ID: 'tidings-test',
    FCM_EMULATOR: `${emulator.host}:${emulator.port}`,
    FCM_EMULATOR_CA: emulator.caFile,
    PUSH_WINDOW_MIN: '500ms',
    PUSH_WINDOW_MAX: '1500ms',
    ...env,
  });
  children.add(push.child);
  push.child.on('exit', () => children.delete(push.child));
  cleanups.push(() => push.stop());
  return push;
}

async function subscribe(push: PushProcess, subs: PublishItem[]): Promise<void> {
  await push.publisher.publishMany(subs);
  const schema = `push_${push.dc}`;
  const tokens = subs.map((s) => (s.record as { token_hash: string }).token_hash);
  await eventually(async () => {
    const { rows } = await db.query<{ n: string }>(
      `SELECT count(*) AS n FROM ${schema}.subscriptions WHERE token_hash = ANY($1)`,
      [tokens],
    );
    return Number(rows[0]?.n) === tokens.length ? true : undefined;
  }, 'subscriptions to be materialized');
}

const pushTopics = (dc: string) => streamAndRetryTopics(kafka, dc, 'notify.push', 'push');

async function drained(dc: string): Promise<void> {
  await untilCommitted(kafka, 'push', () => pushTopics(dc), 'push to commit everything', 45_000);
}

describe('push, sending', () => {
  let push: PushProcess;
  before(async () => {
    push = await startPush({ PUSH_DEVICES_PER_USER: '3' });
  });
  after(() => push.stop());

  test('many notifications for one person within a window become one push', async () => {
    await subscribe(push, [subscription('solo', 'tok-solo')]);
    await push.publisher.publishMany(Array.from({ length: 25 }, () => notification('solo')));
    await drained(push.dc);
    assert.equal(emulator.delivered('tok-solo').length, 1);
    const [request] = emulator.delivered('tok-solo');
    assert.deepEqual(request?.message.data, { type: 'checkNotifications' }, 'a content-free nudge');
    assert.equal(request?.authorization, 'Bearer emulator');
  });

  test('1,200 recipients become three multicast calls of at most 500 tokens, each token once', async () => {
    const users = Array.from({ length: 1_200 }, (_, i) => `many${i}`);
    await subscribe(
      push,
      users.map((u) => subscription(u, `tok-${u}`)),
    );
    const callsBefore = await metricValue(push.port, 'tidings_push_multicast_calls_total');
    const fullBefore = await metricValue(push.port, 'tidings_push_multicast_tokens_bucket', { le: '500' });
    await push.publisher.publishMany(users.map((u) => notification(u)));
    await drained(push.dc);
    const calls = (await metricValue(push.port, 'tidings_push_multicast_calls_total')) - callsBefore;
    assert.equal(calls, 3);
    const withinLimit =
      (await metricValue(push.port, 'tidings_push_multicast_tokens_bucket', { le: '500' })) - fullBefore;
    assert.equal(withinLimit, 3, 'every call carried at most 500 tokens');
    for (const u of users) assert.equal(emulator.delivered(`tok-${u}`).length, 1, `${u} got one push`);
  });

  test('a dead token is tombstoned and never used again; the person keeps their live device', async () => {
    emulator.behave('tok-dead', { answer: 'unregistered' });
    await subscribe(push, [subscription('gone', 'tok-dead'), subscription('gone', 'tok-live')]);
    await push.publisher.publishMany([notification('gone')]);
    await drained(push.dc);
    const tombstones = await readTopic(kafka, topicFor(push.dc, 'notify.push-subscription'), (m) =>
      m.some((x) => x.key?.toString() === tokenHash('tok-dead') && x.value === null),
    );
    assert.ok(tombstones.length > 0);

    await push.publisher.publishMany([notification('gone')]);
    await drained(push.dc);
    assert.equal(
      emulator.requests().filter((r) => r.token === 'tok-dead').length,
      1,
      'asked once, never again',
    );
    assert.equal(emulator.delivered('tok-live').length, 2);
    assert.equal(await metricValue(push.port, 'tidings_push_tokens_total', { outcome: 'dead' }), 1);
  });

  test('a person keeps at most PUSH_DEVICES_PER_USER devices: the oldest are dropped', async () => {
    const start = Date.now() - 60_000;
    const subs = Array.from({ length: 5 }, (_, i) => {
      const item = subscription('many-devices', `tok-device-${i}`);
      return { ...item, record: { ...item.record, meta: { dt: start + i * 1_000 } } } as PublishItem;
    });
    await push.publisher.publishMany(subs);
    // Devices are keyed by token, so they arrive over several partitions in any order: look once
    // every one of them has been handled and committed.
    await untilCommitted(
      kafka,
      'push-subscriptions',
      [topicFor(push.dc, 'notify.push-subscription')],
      'every device to be handled',
    );
    const { rows } = await db.query<{ token: string }>(
      `SELECT token FROM push_${push.dc}.subscriptions WHERE user_id = 'many-devices' ORDER BY token`,
    );
    const kept = rows.map((r) => r.token);
    assert.deepEqual(kept, ['tok-device-2', 'tok-device-3', 'tok-device-4']);
  });

  test('a 429 with Retry-After holds sending that long; the push then arrives exactly once', async () => {
    emulator.behave('tok-busy', { answer: 'quota-exceeded', retryAfterSeconds: 3, times: 1 });
    await subscribe(push, [subscription('busy', 'tok-busy')]);
    await push.publisher.publishMany([notification('busy'), notification('busy')]);
    await eventually(
      () => (emulator.delivered('tok-busy').length > 0 ? true : undefined),
      'the push',
      45_000,
    );
    await drained(push.dc);
    const answers = emulator.requests().filter((r) => r.token === 'tok-busy');
    assert.deepEqual(
      answers.map((r) => r.status),
      [429, 200],
    );
    // Retry delays here are 200 and 400 ms: only the Retry-After explains a later second attempt.
    assert.ok(answers[1]!.at - answers[0]!.at >= 3_000, 'the second attempt waited for Retry-After');
  });
});

describe('push, pooling across partitions', () => {
  test('windows of different partitions that close within each other’s bounds share their multicasts', async () => {
    const push = await startPush({}, 3);
    const users = Array.from({ length: 300 }, (_, i) => `pool${i}`);
    await subscribe(
      push,
      users.map((u) => subscription(u, `tok-${u}`)),
    );
    // Published while push is down, so one fetch brings all three partitions and their windows open together.
    await push.stop();
    await push.publisher.publishMany(users.map((u) => notification(u)));
    const restarted = await spawnPush(push.dc, {});
    await drained(push.dc);
    const windows = await metricValue(restarted.port, 'tidings_push_windows_total');
    const calls = await metricValue(restarted.port, 'tidings_push_multicast_calls_total');
    assert.ok(windows >= 3, `one window per partition at least (${windows})`);
    assert.ok(calls < 3, `${calls} calls for three windows of about 100 tokens each`);
    for (const u of users) assert.equal(emulator.delivered(`tok-${u}`).length, 1, `${u} got one push`);
    await restarted.stop();
  });
});

describe('push, kill switch', () => {
  test('PUSH_KILL_SWITCH=true consumes and commits everything and sends nothing', async () => {
    const push = await startPush({ PUSH_KILL_SWITCH: 'true' }, 2);
    await subscribe(push, [subscription('muted', 'tok-muted')]);
    await push.publisher.publishMany(Array.from({ length: 40 }, () => notification('muted')));
    await drained(push.dc);
    assert.equal(emulator.requests().filter((r) => r.token === 'tok-muted').length, 0);
    assert.equal(
      await metricValue(push.port, 'tidings_push_notifications_total', { kind: 'suppressed' }),
      40,
    );
    await push.stop();
  });
});

describe('push, crash', () => {
  test('killed while a window is open, it sends nothing then and everything once after the restart', async () => {
    const env = { PUSH_WINDOW_MIN: '3s', PUSH_WINDOW_MAX: '3s' };
    const push = await startPush(env);
    await subscribe(push, [subscription('crash', 'tok-crash')]);
    await push.publisher.publishMany([notification('crash'), notification('crash')]);
    await eventually(
      async () => ((await metricValue(push.port, 'tidings_push_windows_open')) > 0 ? true : undefined),
      'the records to wait in a window',
    );
    push.child.kill('SIGKILL');
    await once(push.child, 'exit');
    assert.equal(emulator.requests().filter((r) => r.token === 'tok-crash').length, 0, 'nothing went out');
    assert.ok((await groupLag(kafka, 'push', await pushTopics(push.dc))) > 0, 'nothing was committed');

    const restarted = await spawnPush(push.dc, env);
    await drained(push.dc);
    assert.equal(emulator.delivered('tok-crash').length, 1);
    await restarted.stop();
  });
});

describe('push, delivery trail', () => {
  let push: PushProcess;
  before(async () => {
    push = await startPush({});
  });
  after(() => push.stop());

  const storyOf = async (id: string) => {
    const [story, ...more] = await traceStories(push.dc, '--notification', id);
    assert.equal(more.length, 0);
    return story!;
  };
  const steps = (story: Awaited<ReturnType<typeof storyOf>>) =>
    story.steps.map((s) => [s.stage, s.outcome, s.reason]);

  test('a push names its multicast call and the dead device; a replay adds nothing', async () => {
    emulator.behave('tok-trail-dead', { answer: 'unregistered' });
    await subscribe(push, [subscription('tracy', 'tok-trail-dead'), subscription('tracy', 'tok-trail-live')]);
    const item = notification('tracy');
    const id = (item.record as { notification: { notification_id: string } }).notification.notification_id;
    await push.publisher.publishMany([item]);
    await drained(push.dc);

    const story = await storyOf(id);
    assert.deepEqual(steps(story), [
      ['push', 'token_dead', 'messaging/registration-token-not-registered'],
      ['push', 'pushed', null],
    ]);
    assert.equal(story.state.summary, 'delivered (pushed)');
    assert.equal(story.steps[0]!.ref, tokenHash('tok-trail-dead').slice(0, 12));
    assert.match(story.steps[1]!.ref ?? '', /^[0-9a-f-]{36}$/, 'the multicast call that carried it');

    // The same notification again (a redelivery, a replay): the device has it, nothing new is told.
    await push.publisher.publishMany([item]);
    await drained(push.dc);
    assert.equal(emulator.delivered('tok-trail-live').length, 1);
    assert.deepEqual(await storyOf(id), story);
  });

  test('a person without devices: dropped, no-devices', async () => {
    const item = notification('nobody-subscribed');
    const id = (item.record as { notification: { notification_id: string } }).notification.notification_id;
    await push.publisher.publishMany([item]);
    await drained(push.dc);
    const story = await storyOf(id);
    assert.deepEqual(steps(story), [['push', 'dropped', 'no-devices']]);
    assert.equal(story.state.summary, 'not delivered: dropped, no-devices');
  });

  test('a Retry-After is told as held until then, and the push that follows', async () => {
    emulator.behave('tok-trail-busy', { answer: 'quota-exceeded', retryAfterSeconds: 2, times: 1 });
    await subscribe(push, [subscription('patient', 'tok-trail-busy')]);
    const item = notification('patient');
    const id = (item.record as { notification: { notification_id: string } }).notification.notification_id;
    await push.publisher.publishMany([item]);
    await eventually(() => (emulator.delivered('tok-trail-busy').length > 0 ? true : undefined), 'the push');
    await drained(push.dc);
    const story = await storyOf(id);
    assert.deepEqual(steps(story), [
      ['push', 'held', 'retry-after'],
      ['push', 'pushed', null],
    ]);
    assert.ok(story.steps[0]!.dueAt, 'the hold says until when');
  });
});

describe('push, delivery trail with the kill switch', () => {
  test('every notification consumed under PUSH_KILL_SWITCH is told as dropped, kill-switch', async () => {
    const push = await startPush({ PUSH_KILL_SWITCH: 'true' });
    const items = [notification('switched-off'), notification('switched-off')];
    await push.publisher.publishMany(items);
    await drained(push.dc);
    const stories = await traceStories(push.dc, '--user', 'switched-off');
    assert.deepEqual(
      stories.map((s) => s.state.summary),
      ['not delivered: dropped, kill-switch', 'not delivered: dropped, kill-switch'],
    );
    await push.stop();
  });
});
