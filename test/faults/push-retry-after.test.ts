/**
 * Push under FCM's 429 + Retry-After: nothing is sent while the provider's wait lasts, and the
 * retried push waits for it also when the service crashes and restarts meanwhile (the due time
 * travels in the retry record's headers). Before, the retry went out after the retry policy's own
 * delay, whatever the provider had asked.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { DEFAULT_DATABASE_URL } from '../../libs/config/common.ts';
import { type FcmEmulator, startFcmEmulator } from '../fcm-emulator/emulator.ts';
import {
  applyTestTopicPlan,
  createStreamTopics,
  deleteDcTopics,
  eventually,
  retryDelaysVar,
  type ServiceProcess,
  startService,
  testKafka,
  testPublisher,
  uniqueDc,
} from '../integration/harness.ts';
import { notification, subscription } from '../integration/push-fixture.ts';

const RETRY_AFTER_S = 20;
const kafka = testKafka('eqiad');
const db = new pg.Pool({ connectionString: DEFAULT_DATABASE_URL, max: 2 });
const dc = uniqueDc();
const schema = `push_${dc}`;
const publisher = testPublisher(dc, 'test');
const RETRY_DELAYS_MS = [200, 400];
const running: ServiceProcess[] = [];
let emulator: FcmEmulator;

before(async () => {
  emulator = await startFcmEmulator();
  await createStreamTopics(
    kafka,
    dc,
    ['notify.push-subscription', 'notify.erasure', 'notify.checkpoint', 'notify.status'],
    2,
  );
  await createStreamTopics(kafka, dc, ['notify.push'], 1);
  await applyTestTopicPlan(kafka, dc, { services: ['push'], retryDelaysMs: RETRY_DELAYS_MS });
});
after(async () => {
  for (const push of running) await push.stop('SIGKILL');
  await publisher.close();
  await deleteDcTopics(kafka, dc);
  await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await db.end();
  await emulator.close();
});

async function startPush(): Promise<ServiceProcess> {
  const push = await startService('push', dc, {
    DATABASE_SCHEMA: schema,
    CONSUMER_SESSION_TIMEOUT: '6s',
    CHECKPOINT_INTERVAL: '500ms',
    RETRY_DELAYS: retryDelaysVar(RETRY_DELAYS_MS),
    FCM_PROJECT_ID: 'tidings-test',
    FCM_EMULATOR: `${emulator.host}:${emulator.port}`,
    FCM_EMULATOR_CA: emulator.caFile,
    PUSH_WINDOW_MIN: '300ms',
    PUSH_WINDOW_MAX: '600ms',
  });
  running.push(push);
  return push;
}

test('after a 429 with Retry-After nothing is pushed until it passed, also across a crash and restart', async () => {
  let push = await startPush();
  await publisher.publishMany([subscription('busy', 'tok-busy'), subscription('other', 'tok-other')]);
  await eventually(async () => {
    const { rows } = await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${schema}.subscriptions`);
    return Number(rows[0]?.n) === 2 ? true : undefined;
  }, 'the devices');
  emulator.behave('tok-busy', { answer: 'quota-exceeded', retryAfterSeconds: RETRY_AFTER_S, times: 1 });
  await publisher.publishMany([notification('busy')]);
  const refused = await eventually(
    () => emulator.requests().find((r) => r.token === 'tok-busy' && r.status === 429),
    'the 429',
  );
  const until = refused.at + RETRY_AFTER_S * 1000;

  // The hold is the whole sender's: another person's push waits too.
  await publisher.publishMany([notification('other')]);
  await sleep(3_000);
  assert.deepEqual(emulator.delivered('tok-other'), [], 'nothing is pushed while Retry-After holds');

  // A crash loses what the process held in memory; the retry record still knows when it is due.
  await push.stop('SIGKILL');
  push = await startPush();
  await eventually(
    () => (emulator.delivered('tok-busy').length > 0 ? true : undefined),
    'the retried push',
    60_000,
  );
  const [delivered] = emulator.delivered('tok-busy');
  assert.ok(delivered!.at >= until, `retried ${until - delivered!.at} ms before Retry-After passed`);
  await eventually(() => (emulator.delivered('tok-other').length > 0 ? true : undefined), 'the other push');
  assert.equal(emulator.delivered('tok-busy').length, 1);
  assert.equal(emulator.delivered('tok-other').length, 1);
  await push.stop();
});
