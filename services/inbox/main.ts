/**
 * inbox: the web channel's sink. notify.web (every DC prefix) → a person's notifications in the
 * inbox's own schema, shown as Echo-style entries (bundles, folded summaries) with unread and unseen
 * counters kept in the write path; an HTTP API and a bell page for tokens the upstream app signs,
 * with live updates over Server-Sent Events.
 *
 * Read, seen and archive marks are published on notify.inbox-state (acks=all) before they are
 * applied, and every inbox applies that stream from every DC prefix: the other datacenter shows the
 * same marks after a failover, and the email digest drops what was read on the web. A tombstone on
 * notify.user erases the person's inbox. Retention as in Echo: a cap per person (oldest read ones
 * go first) and a maximum age.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { duration, int, list, port, str } from '../../libs/config/vars.ts';
import { createProducer, DURABLE_SEND } from '../../libs/kafka/client.ts';
import { topicFor } from '../../libs/kafka/topics.ts';
import { runService } from '../../libs/service/run-service.ts';
import { createTrail } from '../../libs/trail/trail.ts';
import { startApiServer } from './api-server.ts';
import { createInboxMetrics } from './inbox-metrics.ts';
import { startLiveHub } from './live.ts';
import {
  applyStateChange,
  countsOf,
  describeNotifications,
  erasePerson,
  listEntries,
  notificationsAfter,
  readByMark,
  type StoreSettings,
  storeNotifications,
  sweep,
} from './store.ts';
import { parseTokenKeyRing } from './token.ts';

export const INBOX_HTTP_PORT = 9110;
const HOUR = 3_600_000;

const spec = {
  INBOX_PORT: port({ default: 8110, help: 'the inbox API, its live stream and its page' }),
  INBOX_TOKEN_KEYS: str({
    secret: true,
    help: 'keys the upstream app signs inbox tokens with, "kid:base64secret[,kid:base64secret...]"; make one with `openssl rand -base64 32`',
  }),
  INBOX_TOKEN_MAX_TTL: duration({
    default: HOUR,
    min: 1_000,
    max: 24 * HOUR,
    help: 'tokens whose exp lies further past their iat are refused',
  }),
  INBOX_CORS_ORIGINS: list({
    default: [],
    pattern: /^https?:\/\/[^/\s]+$/,
    itemExpect: 'origins like https://wiki.example.org',
    help: 'origins whose pages may call the API',
  }),
  INBOX_BUNDLE_WINDOW: duration({
    default: HOUR,
    min: 1_000,
    max: 24 * HOUR,
    help: 'notifications with the same bundle key within one window show as one entry',
  }),
  INBOX_ALERT_MAX_PRIORITY: int({
    default: 2,
    min: 0,
    help: 'categories of this priority or more important are alerts, the rest notices',
  }),
  INBOX_MAX_PER_PERSON: int({
    default: 2_000,
    min: 1,
    max: 100_000,
    help: 'notifications kept per person (Echo keeps 2,000); the oldest read ones go first',
  }),
  INBOX_MAX_AGE: duration({ default: 90 * 24 * HOUR, min: HOUR, help: 'older notifications are deleted' }),
  INBOX_MARKER_RETENTION: duration({
    default: 14 * 24 * HOUR,
    min: HOUR,
    help: 'how long marks for absent notifications and markers of removed ones are kept; must outlast notify.web retention',
  }),
  INBOX_SWEEP_INTERVAL: duration({ default: HOUR, min: 1_000, help: 'how often retention runs' }),
  INBOX_MAX_STREAMS: int({ default: 10_000, min: 1, help: 'live streams one process holds at most' }),
  INBOX_CONSUMER_GROUP: str({
    default: 'inbox',
    pattern: /^[A-Za-z0-9._-]{1,100}$/,
    expect: 'a consumer group name',
    help: 'group of notify.web; notify.inbox-state and notify.user use it with -state and -people',
  }),
};

await runService({
  name: 'inbox',
  httpPort: INBOX_HTTP_PORT,
  spec,
  migrations: join(import.meta.dirname, 'migrations'),
  rules: [
    {
      vars: ['INBOX_TOKEN_KEYS'],
      check: (c) => {
        try {
          parseTokenKeyRing(c.INBOX_TOKEN_KEYS);
          return undefined;
        } catch (error) {
          return (error as Error).message;
        }
      },
    },
  ],
  async start({ config, consume, kafka, serde, log, registry, onShutdown, addReadiness, db: pool }) {
    if (!pool) throw new Error('inbox runs with its own database schema');
    const db = pool;
    const metrics = createInboxMetrics(registry);
    const settings: StoreSettings = {
      bundleWindowMs: config.INBOX_BUNDLE_WINDOW,
      alertMaxPriority: config.INBOX_ALERT_MAX_PRIORITY,
      maxPerPerson: config.INBOX_MAX_PER_PERSON,
      maxAgeMs: config.INBOX_MAX_AGE,
      channel: `${config.DATABASE_SCHEMA ?? 'inbox'}_changes`,
    };
    const dc = config.TIDINGS_DC;

    const trail = createTrail({ stage: 'inbox', enabled: config.DELIVERY_TRAIL });
    const producer = createProducer(kafka);
    await producer.connect();
    onShutdown('state producer', () => producer.disconnect());

    await consume({
      stream: 'notify.user',
      group: `${config.INBOX_CONSUMER_GROUP}-people`,
      handler: {
        handle() {
          // Only erasure matters to the inbox.
        },
        async handleTombstone(record) {
          if (!record.key) return;
          await erasePerson(db, record.key, record.timestamp, settings);
          log.info('erased a person\u2019s inbox');
        },
      },
    });

    await consume({
      stream: 'notify.inbox-state',
      group: `${config.INBOX_CONSUMER_GROUP}-state`,
      handler: {
        async handle({ value }, context) {
          const change = {
            userId: value.user_id,
            action: value.action,
            notificationIds: value.notification_ids,
            upTo: value.up_to,
            dt: value.meta.dt,
          };
          await applyStateChange(db, change, settings);
          if (value.action !== 'read' || !trail.enabled) return;
          for (const read of await readByMark(db, change)) {
            trail.write(context, { ...read, recipientId: value.user_id, channel: 'web', outcome: 'read' });
          }
        },
      },
    });

    const live = await startLiveHub({ url: config.DATABASE_URL, channel: settings.channel, log });
    const api = await startApiServer({
      port: config.INBOX_PORT,
      keyRing: parseTokenKeyRing(config.INBOX_TOKEN_KEYS),
      maxTokenTtlMs: config.INBOX_TOKEN_MAX_TTL,
      corsOrigins: config.INBOX_CORS_ORIGINS,
      maxStreams: config.INBOX_MAX_STREAMS,
      reads: {
        counts: (userId) => countsOf(db, userId),
        list: (userId, query) => listEntries(db, userId, query),
        after: (userId, seq, limit) => notificationsAfter(db, userId, seq, limit),
      },
      async change({ userId, action, ids, upToId }) {
        const now = Date.now();
        const described = await describeNotifications(db, userId, ids);
        const upTo =
          action === 'seen'
            ? now
            : upToId
              ? (await describeNotifications(db, userId, [upToId])).latest
              : null;
        const value = {
          meta: {
            id: randomUUID(),
            dt: now,
            stream: 'notify.inbox-state',
            dc,
            producer: 'inbox',
            request_id: null,
          },
          user_id: userId,
          action,
          notification_ids: [...ids],
          event_ids: described.eventIds,
          up_to: upTo,
        };
        await producer.send({
          ...DURABLE_SEND,
          topic: topicFor(dc, 'notify.inbox-state'),
          messages: [{ key: userId, value: await serde.encode('notify.inbox-state', value) }],
        });
        await applyStateChange(db, { userId, action, notificationIds: ids, upTo, dt: now }, settings);
      },
      live,
      metrics,
      log,
    });
    onShutdown('live hub', () => live.close());
    onShutdown('inbox API', () => api.close());
    log.info({ port: api.port }, 'inbox API listening: /v1/ and the page at /');

    const timer = setInterval(() => {
      sweep(db, {
        now: Date.now(),
        maxAgeMs: config.INBOX_MAX_AGE,
        markerRetentionMs: config.INBOX_MARKER_RETENTION,
      })
        .then((deleted) => {
          if (deleted > 0) {
            metrics.swept(deleted);
            log.info({ deleted }, 'deleted notifications past INBOX_MAX_AGE');
          }
        })
        .catch((err: unknown) => log.warn({ err }, 'inbox retention failed; will retry'));
    }, config.INBOX_SWEEP_INTERVAL);
    timer.unref();
    onShutdown('retention timer', () => clearInterval(timer));

    await consume({
      stream: 'notify.web',
      group: config.INBOX_CONSUMER_GROUP,
      handler: {
        // The whole fetched batch in one transaction; each record then only reads its outcome.
        async prepareBatch(records) {
          const outcomes = await storeNotifications(
            db,
            records.map(({ value }) => ({
              notification: value.notification,
              eventMs: value.meta.dt,
              folded: value.folded,
            })),
            settings,
            Date.now(),
          );
          for (const outcome of outcomes.values()) metrics.stored(outcome);
          return outcomes;
        },
        handle(record, context) {
          const { notification } = record.value;
          const outcome = context.batch.get(notification.notification_id);
          if (outcome === undefined) {
            throw new Error(`notification at offset ${record.offset} was not stored with its batch`);
          }
          trail.write(context, {
            eventId: notification.event_id,
            recipientId: notification.recipient_id,
            notificationId: notification.notification_id,
            channel: 'web',
            // A redelivery or replay was stored the first time: the same decision, the same trail id.
            outcome: outcome === 'stored' || outcome === 'duplicate' ? 'stored' : 'dropped',
            reason: outcome === 'stored' || outcome === 'duplicate' ? null : outcome,
          });
        },
      },
    });
    addReadiness('live updates', () => ({
      ok: live.connected(),
      detail: live.connected() ? `${api.streams()} streams` : 'not listening for changes; reconnecting',
    }));
  },
});
