/**
 * The push process (services/push/main.ts) at saturation against the FCM emulator, in a datacenter
 * and a Postgres schema of its own: BENCH_PUSH_NOTIFICATIONS notifications (default 20,000), one per
 * person with one device each, published while push runs; timed from the first publish until the
 * emulator accepted a push for every person. Reports notifications/s, mean tokens per multicast
 * call (goal: above 450 of 500) and how they spread, windows flushed and TLS connections opened,
 * against a baseline in the same run: a raw firebase-admin loop (the same client construction)
 * sending 500-token multicasts, 4 at a time.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { join } from 'node:path';
import pg from 'pg';
import { DEFAULT_DATABASE_URL } from '../../libs/config/common.ts';
import type { PublishItem } from '../../libs/publish/publish.ts';
import { createFcmClient } from '../../services/push/fcm-client.ts';
import { startFcmEmulator } from '../fcm-emulator/emulator.ts';
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
import { round } from './stats.ts';

const NOTIFICATIONS = Number(process.env.BENCH_PUSH_NOTIFICATIONS ?? 20_000);
const PUBLISH_CHUNK = 2_000;

function connections(requests: readonly { connection: number }[]): number {
  return new Set(requests.map((r) => r.connection)).size;
}

export async function run(): Promise<Record<string, unknown>> {
  const emulator = await startFcmEmulator();
  const kafka = testKafka('eqiad');
  const dc = uniqueDc();
  const schema = `push_${dc}`;
  const db = new pg.Pool({ connectionString: DEFAULT_DATABASE_URL, max: 2 });
  const publisher = testPublisher(dc, 'bench');
  let child: ChildProcess | undefined;
  try {
    const raw = createFcmClient({
      projectId: 'bench',
      emulator: { host: emulator.host, port: emulator.port, ca: emulator.ca },
    });
    const rawStart = performance.now();
    for (let sent = 0; sent < NOTIFICATIONS; sent += 2_000) {
      await Promise.all(
        [0, 1, 2, 3].map((call) =>
          raw.sendEachForMulticast({
            tokens: Array.from({ length: 500 }, (_, i) => `raw-${sent}-${call}-${i}`),
            data: { type: 'bench' },
          }),
        ),
      );
    }
    const rawSeconds = (performance.now() - rawStart) / 1000;
    await raw.close();
    const rawConnections = connections(emulator.requests());
    emulator.reset();

    await createStreamTopics(
      kafka,
      dc,
      ['notify.push-subscription', 'notify.erasure', 'notify.checkpoint', 'notify.status'],
      3,
    );
    await createStreamTopics(kafka, dc, ['notify.push'], 6);
    await applyTestTopicPlan(kafka, dc, { services: ['push'] });
    const port = await freePort();
    child = spawn(process.execPath, [join(import.meta.dirname, '..', '..', 'services', 'push', 'main.ts')], {
      env: serviceEnv(dc, port, {
        DATABASE_SCHEMA: schema,
        FCM_PROJECT_ID: 'bench',
        FCM_EMULATOR: `${emulator.host}:${emulator.port}`,
        FCM_EMULATOR_CA: emulator.caFile,
        PUSH_WINDOW_MIN: '1s',
        PUSH_WINDOW_MAX: '2s',
        CONSUMER_CONCURRENCY: '512',
      }),
      stdio: ['ignore', 'inherit', 'inherit'],
    });

    const users = Array.from({ length: NOTIFICATIONS }, (_, i) => `u${i}`);
    const publishAll = async (item: (user: string) => PublishItem) => {
      for (let i = 0; i < users.length; i += PUBLISH_CHUNK) {
        await publisher.publishMany(users.slice(i, i + PUBLISH_CHUNK).map(item));
      }
    };
    await publishAll((user) => ({
      stream: 'notify.push-subscription',
      record: {
        token_hash: createHash('sha256').update(`tok-${user}`).digest('hex'),
        user_id: user,
        provider: 'fcm',
        token: `tok-${user}`,
        app: 'org.wikipedia',
        locale: 'en',
      },
    }));
    await eventually(
      async () => {
        const { rows } = await db
          .query<{ n: number }>(`SELECT count(*)::int AS n FROM ${schema}.subscriptions`)
          .catch(() => ({ rows: [{ n: 0 }] }));
        return (rows[0]?.n ?? 0) >= NOTIFICATIONS ? true : undefined;
      },
      'subscriptions to be materialized',
      180_000,
    );

    const start = performance.now();
    await publishAll((user) => ({
      stream: 'notify.push',
      record: {
        notification: {
          notification_id: randomUUID(),
          event_id: randomUUID(),
          event_type: 'bench',
          category: 'bench',
          recipient_id: user,
          title: '',
          url: '',
          priority: 1,
          locale: 'en',
          timezone: 'UTC',
        },
      },
    }));
    const publishSeconds = (performance.now() - start) / 1000;
    await eventually(
      () => (emulator.requests().filter((r) => r.status === 200).length >= NOTIFICATIONS ? true : undefined),
      'every push to arrive',
      300_000,
    );
    const seconds = (performance.now() - start) / 1000;
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const total = (name: string) =>
      metrics
        .split('\n')
        .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
        .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
    const calls = total('tidings_push_multicast_calls_total');
    // Calls per tokens-per-call bucket (non-cumulative), from the service's histogram.
    const cumulative = new Map<string, number>();
    for (const line of metrics.split('\n')) {
      const le = /^tidings_push_multicast_tokens_bucket\{.*le="([^"]+)".*\} (\d+)/.exec(line);
      if (le?.[1] && le[2]) cumulative.set(le[1], (cumulative.get(le[1]) ?? 0) + Number(le[2]));
    }
    let below = 0;
    const tokensPerCall: Record<string, number> = {};
    for (const [le, count] of cumulative) {
      tokensPerCall[`<=${le}`] = count - below;
      below = count;
    }
    const pushNotificationsPerSecond = NOTIFICATIONS / seconds;
    const rawTokensPerSecond = NOTIFICATIONS / rawSeconds;
    return {
      notifications: NOTIFICATIONS,
      push: {
        notifications_per_s: round(pushNotificationsPerSecond),
        seconds: round(seconds),
        publish_seconds: round(publishSeconds),
        multicast_calls: calls,
        mean_tokens_per_call: round(total('tidings_push_multicast_tokens_sum') / calls),
        tokens_per_call: tokensPerCall,
        windows: total('tidings_push_windows_total'),
        connections: connections(emulator.requests()),
      },
      raw_firebase_admin: {
        tokens_per_s: round(rawTokensPerSecond),
        seconds: round(rawSeconds),
        connections: rawConnections,
      },
      ratio_push_to_raw: round(pushNotificationsPerSecond / rawTokensPerSecond),
    };
  } finally {
    if (child && child.exitCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }
    await publisher.close();
    await deleteDcTopics(kafka, dc);
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await db.end();
    await emulator.close();
  }
}
