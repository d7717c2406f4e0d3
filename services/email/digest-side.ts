/**
 * The email service's digest side: notify.email → notify.email-send (at once, in a bundle, or in a
 * daily or weekly digest), the due-mail poller, the one-click unsubscribe endpoint, and clean-up.
 *
 * `now` is the only clock the side reads (bundling itself goes by event time). Production passes
 * Date.now; an integration test passes a clock it moves through a day, and runs exactly this code.
 */
import { randomUUID } from 'node:crypto';
import { createProducer, DURABLE_SEND } from '../../libs/kafka/client.ts';
import { topicFor } from '../../libs/kafka/topics.ts';
import type { StreamName } from '../../libs/schemas/catalog.ts';
import { recordKey } from '../../libs/schemas/stream-keys.ts';
import type { StreamInputs } from '../../libs/schemas/types.generated.ts';
import type { ServiceConfig, ServiceContext } from '../../libs/service/run-service.ts';
import { createTrail } from '../../libs/trail/trail.ts';
import type { ComposeSettings } from './compose-mail.ts';
import { digestSettings, type digestSpec } from './digest-config.ts';
import { createDigestMetrics } from './digest-metrics.ts';
import { startDuePoller } from './due-mail.ts';
import { emailHandler } from './email-handler.ts';
import { cleanUp, countPending } from './pending-store.ts';
import { DEFAULT_TEMPLATE_DIR, loadTemplates } from './render.ts';
import { startUnsubscribeServer } from './unsubscribe-server.ts';
import { webReadsHandler } from './web-reads.ts';

export type DigestContext = ServiceContext<ServiceConfig<typeof digestSpec>>;

const CLEANUP_INTERVAL_MS = 600_000;

export async function startDigestSide(context: DigestContext, now: () => number = Date.now): Promise<void> {
  const { config, kafka, serde, log, registry, onShutdown, consume } = context;
  if (!context.db) throw new Error('the digest side needs its database schema (migrations)');
  const db = context.db;
  const settings = digestSettings(config);
  const templates = await loadTemplates(config.EMAIL_TEMPLATE_DIR ?? DEFAULT_TEMPLATE_DIR);
  const metrics = createDigestMetrics(registry);
  metrics.watchPending(() => countPending(db, now()));
  const dc = config.TIDINGS_DC;
  const trail = createTrail({ stage: 'digest', enabled: config.DELIVERY_TRAIL });

  const producer = createProducer(kafka);
  await producer.connect();
  onShutdown('digest producer', () => producer.disconnect());

  async function produce<S extends StreamName>(stream: S, values: readonly StreamInputs[S][]): Promise<void> {
    if (values.length === 0) return;
    const messages = await Promise.all(
      values.map(async (value) => ({
        key: recordKey(stream, value),
        value: await serde.encode(stream, value),
      })),
    );
    await producer.send({ ...DURABLE_SEND, topic: topicFor(dc, stream), messages });
  }

  const compose: ComposeSettings = {
    templates,
    keyRing: settings.keyRing,
    unsubscribeUrl: config.EMAIL_UNSUBSCRIBE_URL,
    unsubscribeMailto: config.EMAIL_UNSUBSCRIBE_MAILTO,
    unsubscribeTtlMs: config.EMAIL_UNSUBSCRIBE_TTL,
    from: config.EMAIL_FROM,
    sendingDomain: config.EMAIL_SENDING_DOMAIN,
    siteName: config.EMAIL_SITE_NAME,
    origin: { dc, producer: 'email' },
  };

  const unsubscribe = await startUnsubscribeServer({
    port: config.EMAIL_UNSUBSCRIBE_PORT,
    publicUrl: config.EMAIL_UNSUBSCRIBE_URL,
    keyRing: settings.keyRing,
    siteName: config.EMAIL_SITE_NAME,
    metrics,
    log,
    now,
    publish: ({ dt, ...change }) =>
      produce('notify.preference-change', [
        {
          meta: {
            id: randomUUID(),
            dt,
            stream: 'notify.preference-change',
            dc,
            producer: 'email',
            request_id: null,
          },
          ...change,
        },
      ]),
  });
  onShutdown('unsubscribe server', () => unsubscribe.close());
  log.info(
    { port: unsubscribe.port, public_url: config.EMAIL_UNSUBSCRIBE_URL },
    'one-click unsubscribe endpoint listening',
  );

  await consume({
    stream: 'notify.email',
    handler: emailHandler({
      db,
      compose,
      schedule: settings.schedule,
      bundleIntervalMs: config.EMAIL_BUNDLE_INTERVAL,
      metrics,
      trail,
      log,
      now,
    }),
  });

  await consume({
    stream: 'notify.inbox-state',
    handler: webReadsHandler(db, registry, trail),
  });

  // Registered after the consumer so that it stops first: no half-sent batch outlives the producer.
  const poller = startDuePoller({
    db,
    compose,
    produce: (records) => produce('notify.email-send', records),
    batchSize: config.EMAIL_DUE_BATCH,
    workers: config.EMAIL_DUE_WORKERS,
    intervalMs: config.EMAIL_DUE_POLL_INTERVAL,
    metrics,
    log,
    now,
  });
  onShutdown('due-mail poller', () => poller.stop());

  const cleanup = setInterval(() => {
    cleanUp(db, {
      now: now(),
      emittedRetentionMs: config.EMAIL_EMITTED_RETENTION,
      bundleIntervalMs: config.EMAIL_BUNDLE_INTERVAL,
    })
      .then((deleted) => {
        if (deleted.emitted + deleted.bundleStates > 0) log.info({ deleted }, 'cleaned up digest state');
      })
      .catch((err: unknown) => log.warn({ err }, 'cleaning up digest state failed; will retry'));
  }, CLEANUP_INTERVAL_MS);
  cleanup.unref();
  onShutdown('digest clean-up timer', () => clearInterval(cleanup));
}
