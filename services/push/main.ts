/**
 * push: notify.push → content-free "check your notifications" multicasts through firebase-admin.
 *
 * Records of a partition gather in a batching window (fixed, or random between two bounds); when it
 * closes each person gets one push on each device, and only then do the window's records resolve and
 * commit, so a crash before the flush loses nothing. The runtime hands a partition its next fetch
 * only once this one is committed, so a window holds what one fetch brought (up to the fetch size)
 * and flushes early at PUSH_WINDOW_MAX_RECORDS. Its last multicast per provider and app would be
 * partial, so closing windows hand their devices to one multicast assembler for the process, which
 * pools them across partitions within each window's bound (see multicast-assembler.ts); every
 * partition of a fetch gets its window at once (PUSH_CONCURRENT_PARTITIONS), so at saturation their
 * windows close within each other's bounds. Dead tokens are tombstoned on
 * notify.push-subscription, and an erased person's devices forgotten (notify.erasure); 429/5xx go
 * through the retry topics, and a Retry-After pauses consumption for that long. PUSH_KILL_SWITCH=true
 * consumes and commits without sending: nothing piles up, and turning it off again does not fire a
 * stale flood. (The router's ROUTER_EMIT_PUSH=false is the other switch: it produces no push records.)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEDUP_RETENTION_MS } from '../../libs/config/retention.ts';
import { bool, duration, int, str } from '../../libs/config/vars.ts';
import { createProducer, DURABLE_SEND } from '../../libs/kafka/client.ts';
import { RejectedRecordError, RetryLater } from '../../libs/kafka/consumer-runtime.ts';
import { topicFor } from '../../libs/kafka/topics.ts';
import { runService } from '../../libs/service/run-service.ts';
import { createTrail } from '../../libs/trail/trail.ts';
import { createBatchingWindows } from './batching-window.ts';
import { deliverWindow, type PushRequest, type WindowResult } from './deliver-window.ts';
import { createFcmClient } from './fcm-client.ts';
import { type Contribution, createMulticastAssembler } from './multicast-assembler.ts';
import { createPushMetrics } from './push-metrics.ts';
import { pushDecisions } from './push-trail.ts';
import {
  deliveredPairs,
  devicesOf,
  erasureHandler,
  pruneDelivered,
  recordDelivered,
  removeDevices,
  subscriptionHandler,
} from './subscriptions.ts';
import { chooseWindowMs } from './window-duration.ts';

export const PUSH_HTTP_PORT = 9104;

const spec = {
  PUSH_KILL_SWITCH: bool({
    default: false,
    help: 'true: notify.push is consumed and committed without sending anything (no backlog, no stale flood later)',
  }),
  PUSH_WINDOW_MIN: duration({ default: 3_000, min: 0, help: 'shortest batching window' }),
  PUSH_WINDOW_MAX: duration({
    default: 10_000,
    min: 0,
    help: 'longest batching window; equal to PUSH_WINDOW_MIN for a fixed window',
  }),
  PUSH_WINDOW_MAX_RECORDS: int({
    default: 5_000,
    min: 1,
    help: 'a window holding this many notifications flushes early',
  }),
  PUSH_CONCURRENT_PARTITIONS: int({
    default: 64,
    min: 1,
    help: 'partitions whose batching windows are open at once; beyond it a fetched partition waits its turn, and its window shares no multicast with the others',
  }),
  PUSH_DEVICES_PER_USER: int({ default: 10, min: 1, help: 'devices kept per person; the oldest go first' }),
  PUSH_DELIVERED_RETENTION: duration({
    default: DEDUP_RETENTION_MS,
    min: DEDUP_RETENTION_MS,
    help: 'how long push remembers which device got which notification (dedup of redeliveries and replays, libs/config/retention.ts)',
  }),
  FCM_PROJECT_ID: str({ help: 'Firebase project the messages are sent for' }),
  FCM_EMULATOR: str({
    optional: true,
    pattern: /^[^:\s]+:\d+$/,
    expect: 'host:port',
    help: 'send to an FCM emulator here instead of fcm.googleapis.com (tests, make dev)',
  }),
  FCM_EMULATOR_CA: str({ optional: true, help: "PEM file of the CA that signed the emulator's certificate" }),
  FCM_MAX_SOCKETS: int({ default: 64, min: 1, help: 'concurrent connections to FCM' }),
};

await runService({
  name: 'push',
  httpPort: PUSH_HTTP_PORT,
  spec,
  migrations: join(import.meta.dirname, 'migrations'),
  rules: [
    {
      vars: ['PUSH_WINDOW_MIN', 'PUSH_WINDOW_MAX'],
      check: (c) => (c.PUSH_WINDOW_MIN <= c.PUSH_WINDOW_MAX ? undefined : 'must not exceed PUSH_WINDOW_MAX'),
    },
    {
      vars: ['PUSH_WINDOW_MAX', 'CONSUMER_SESSION_TIMEOUT'],
      // A partition's batch waits for its window: a window near the session timeout gets the member evicted.
      check: (c) =>
        c.PUSH_WINDOW_MAX * 2 <= c.CONSUMER_SESSION_TIMEOUT
          ? undefined
          : 'must be at most half of CONSUMER_SESSION_TIMEOUT',
    },
    {
      vars: ['FCM_EMULATOR', 'FCM_EMULATOR_CA'],
      check: (c) =>
        (c.FCM_EMULATOR === undefined) === (c.FCM_EMULATOR_CA === undefined)
          ? undefined
          : 'set both FCM_EMULATOR and FCM_EMULATOR_CA, or neither',
    },
  ],
  async start({ config, consume, kafka, log, registry, onShutdown, db: pool }) {
    if (!pool) throw new Error('push runs with its own database schema');
    const db = pool;
    const metrics = createPushMetrics(registry);
    const trail = createTrail({ stage: 'push', enabled: config.DELIVERY_TRAIL });

    const producer = createProducer(kafka);
    await producer.connect();
    onShutdown('tombstone producer', () => producer.disconnect());

    await consume({
      stream: 'notify.push-subscription',
      handler: subscriptionHandler(db, { cap: config.PUSH_DEVICES_PER_USER, dc: config.TIDINGS_DC, log }),
    });
    await consume({ stream: 'notify.erasure', handler: erasureHandler(db) });

    if (config.PUSH_KILL_SWITCH) {
      log.warn('PUSH_KILL_SWITCH=true: notify.push is consumed and committed without sending anything');
      await consume({
        stream: 'notify.push',
        handler: {
          handle(record, context) {
            metrics.suppressed(1);
            for (const decision of pushDecisions(record.value.notification, 'kill-switch', Date.now())) {
              trail.write(context, decision);
            }
          },
        },
      });
      return;
    }

    const [host, port] = config.FCM_EMULATOR?.split(':') ?? [];
    const fcm = createFcmClient({
      projectId: config.FCM_PROJECT_ID,
      maxSockets: config.FCM_MAX_SOCKETS,
      ...(host && port && config.FCM_EMULATOR_CA
        ? { emulator: { host, port: Number(port), ca: readFileSync(config.FCM_EMULATOR_CA, 'utf8') } }
        : {}),
    });
    onShutdown('fcm client', () => fcm.close());
    if (config.FCM_EMULATOR) log.warn({ emulator: config.FCM_EMULATOR }, 'sending to an FCM emulator');

    const prune = setInterval(() => {
      pruneDelivered(db, config.PUSH_DELIVERED_RETENTION).catch((err) =>
        log.warn({ err }, 'pruning delivered pushes failed; will retry'),
      );
    }, 3_600_000);
    prune.unref();
    onShutdown('prune timer', () => clearInterval(prune));

    const assembler = createMulticastAssembler({
      send: (message) => fcm.sendEachForMulticast(message),
      observe: metrics.multicast,
    });
    const windows = createBatchingWindows<PushRequest, WindowResult, Contribution>({
      windowMs: () => chooseWindowMs(config.PUSH_WINDOW_MIN, config.PUSH_WINDOW_MAX),
      maxItems: config.PUSH_WINDOW_MAX_RECORDS,
      opened: (closesAt) => assembler.join({ closesAt, sendBy: Date.now() + config.PUSH_WINDOW_MAX }),
      async flush(requests, contribution) {
        try {
          const result = await deliverWindow(requests, {
            devicesOf: (users) => devicesOf(db, users),
            deliveredPairs: (ids) => deliveredPairs(db, ids),
            recordDelivered: (pairs) => recordDelivered(db, pairs),
            async dropDeadDevices(tokenHashes) {
              if (tokenHashes.length === 0) return;
              // The tombstones carry the time the local markers get, their event time everywhere.
              const at = Date.now();
              await producer.send({
                ...DURABLE_SEND,
                topic: topicFor(config.TIDINGS_DC, 'notify.push-subscription'),
                messages: tokenHashes.map((key) => ({ key, value: null, timestamp: String(at) })),
              });
              await removeDevices(db, tokenHashes, at);
              log.info({ tokens: tokenHashes.length }, 'tombstoned devices the provider reported dead');
            },
            multicast: (targets) => contribution.send(targets),
            observe: metrics.observe,
          });
          metrics.window(requests.length, result.pushes);
          return result;
        } finally {
          // A window whose lookups failed sends nothing: other windows' multicasts must not wait for it.
          contribution.leave();
        }
      },
    });

    metrics.watchWindows(windows.open);

    await consume({
      stream: 'notify.push',
      partitionsConsumedConcurrently: config.PUSH_CONCURRENT_PARTITIONS,
      handler: {
        // Records join their window here, all at once, so a person's notifications in one fetch
        // share a window even though the runtime handles one person's records one after another.
        async prepareBatch(records) {
          const joined = new Map<string, Promise<WindowResult>>();
          for (const record of records) {
            const pending = windows.add(`${record.topic}|${record.partition}`, {
              recipient: record.value.notification.recipient_id,
              notificationId: record.value.notification.notification_id,
            });
            // A record the runtime leaves unhandled (stop, pause) must not turn a failed flush into a crash.
            pending.catch(() => undefined);
            joined.set(record.offset, pending);
          }
          return joined;
        },
        async handle(record, context) {
          const { batch, hold } = context;
          const pending = batch.get(record.offset);
          if (!pending) throw new Error(`record at offset ${record.offset} joined no window`);
          const outcome = (await pending).outcomes.get(record.value.notification.recipient_id);
          if (!outcome) return;
          if (trail.enabled) {
            // What the window did has happened, whether this record then retries or not.
            for (const decision of pushDecisions(record.value.notification, outcome, Date.now())) {
              trail.write(context, decision, { evenIfFailed: true });
            }
          }
          if (outcome.kind === 'delivered') return;
          if (outcome.kind === 'rejected') throw new RejectedRecordError(outcome.code);
          if (outcome.carrier !== record.value.notification.notification_id) return;
          const failed = `provider failed transiently (${outcome.code}); retrying`;
          if (outcome.retryAfterMs === null) throw new Error(failed);
          // Retry-After holds every partition: the provider asked this sender, not one partition, to wait.
          hold('retry-after', { until: Date.now() + outcome.retryAfterMs });
          throw new RetryLater(outcome.retryAfterMs, failed);
        },
      },
    });
  },
});
