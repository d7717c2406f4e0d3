/**
 * The router: people materialized from notify.user and notify.preference-change, and notify.event
 * routed to notify.web, notify.email and notify.push.
 *
 * Four consumer groups of one process: router-users, router-erasures and router-preferences keep
 * the router's copy of people current; router routes events. Events of a chatty type are parked on
 * `<dc>.notify.event.router.held` (same schema and key as notify.event; declared in the topic plan,
 * which runService checks before start); an operator releases them by republishing to notify.event
 * with the type's cap raised, or drops them.
 */
import { join } from 'node:path';
import { DEDUP_RETENTION_MS } from '../../libs/config/retention.ts';
import { holdTopicOf } from '../../libs/kafka/topic-plan.ts';
import { runService } from '../../libs/service/run-service.ts';
import { createTrail } from '../../libs/trail/trail.ts';
import { loadCategoryRegistry } from './categories.ts';
import { chattyCapOf, ROUTER_HTTP_PORT, routerSpec, routingPolicyOf } from './config.ts';
import { eventHandler } from './event-handler.ts';
import { erasureHandler, preferenceChangeHandler, userHandler } from './people-materializer.ts';
import { createRoutingMetrics } from './routing-metrics.ts';
import { createRouterStore } from './store.ts';

const HOUR_MS = 3_600_000;

await runService({
  name: 'router',
  httpPort: ROUTER_HTTP_PORT,
  spec: routerSpec,
  migrations: join(import.meta.dirname, 'migrations'),
  async start({ config, db, log, registry, consume, onShutdown }) {
    const categories = await loadCategoryRegistry(config.CATEGORY_REGISTRY);
    log.info({ categories: [...categories.keys()] }, 'category registry loaded');
    // runService gives a pool to every service with migrations.
    const store = createRouterStore(db!);
    const holdTopic = holdTopicOf(config.TIDINGS_DC);
    // Processed events are the router's dedup ledger: kept as long as a replay may reach back.
    const prune = setInterval(() => {
      store
        .prune(Date.now() - DEDUP_RETENTION_MS)
        .then((rows) => log.debug({ rows }, 'pruned processed events and counters past the dedup retention'))
        .catch((err) => log.warn({ err }, 'pruning processed events and counters failed; will retry'));
    }, HOUR_MS);
    prune.unref();
    onShutdown('prune timer', () => clearInterval(prune));

    await consume({
      stream: 'notify.user',
      handler: userHandler(store, config.TIDINGS_DC),
    });
    await consume({ stream: 'notify.erasure', handler: erasureHandler(store) });
    await consume({
      stream: 'notify.preference-change',
      handler: preferenceChangeHandler(store),
    });
    await consume({
      stream: 'notify.event',
      partitionsConsumedConcurrently: config.ROUTER_CONCURRENT_PARTITIONS,
      prepareSlice: config.ROUTER_LOOKUP_SLICE,
      handler: eventHandler({
        store,
        registry: categories,
        policy: routingPolicyOf(config),
        cap: chattyCapOf(config),
        origin: { dc: config.TIDINGS_DC, producer: 'router' },
        holdTopic,
        trail: createTrail({ stage: 'router', enabled: config.DELIVERY_TRAIL }),
        metrics: createRoutingMetrics(registry),
        onChattyTrip(event) {
          log.error(
            {
              type: event.type,
              cap: config.ROUTER_CHATTY_CAP,
              window_ms: config.ROUTER_CHATTY_WINDOW,
              hold_topic: holdTopic,
            },
            `event type ${event.type} passed the chatty cap: its events are held on ${holdTopic} for the rest of the window`,
          );
        },
      }),
    });
  },
});
