/** The router's own environment variables, on top of the common and consumer ones. */
import type { ConfigOf } from '../../libs/config/load.ts';
import { bool, duration, int, str } from '../../libs/config/vars.ts';
import { declaredPartitions } from '../../libs/kafka/topic-plan.ts';
import { DEFAULT_REGISTRY_PATH } from './categories.ts';
import type { ChattyCap } from './chatty-guard.ts';
import { DEFAULT_SUNSET_DAYS, type RoutingPolicy } from './route.ts';

const DAY_MS = 86_400_000;

export const ROUTER_HTTP_PORT = 9101;

export const routerSpec = {
  ROUTER_SUNSET_DAYS: int({
    default: DEFAULT_SUNSET_DAYS,
    min: 1,
    help: 'no email (transactional excepted) to people inactive for longer than this many days',
  }),
  ROUTER_CHATTY_CAP: int({
    default: 100_000,
    min: 1,
    help: 'most recipients one event type may reach per chatty window; past it its events are held',
  }),
  ROUTER_CHATTY_WINDOW: duration({ default: 3_600_000, min: 1_000, help: 'window of the chatty cap' }),
  CATEGORY_REGISTRY: str({ default: DEFAULT_REGISTRY_PATH, help: 'category registry JSON file' }),
  ROUTER_CONCURRENT_PARTITIONS: int({
    // Every partition a router can own: a batch waits on Postgres before and after its sends, and
    // only other partitions' batches keep the process busy meanwhile (docs/architecture.md, Scale).
    default: declaredPartitions('notify.event'),
    min: 1,
    help: 'notify.event partitions whose fetched batches are routed at once',
  }),
  ROUTER_LOOKUP_SLICE: int({
    default: 500,
    min: 1,
    help: 'events per Postgres look-up; the next slice is looked up while the current one is routed',
  }),
  ROUTER_EMIT_PUSH: bool({
    default: true,
    help: 'false: the router produces no push notifications at all (nothing is kept to send later); push stays up',
  }),
};

export type RouterConfig = ConfigOf<typeof routerSpec>;

/** The routing rules the settings make: one reading for the router and for `tidings explain`. */
export function routingPolicyOf(config: RouterConfig): RoutingPolicy {
  return { sunsetAfterMs: config.ROUTER_SUNSET_DAYS * DAY_MS, emitPush: config.ROUTER_EMIT_PUSH };
}

export function chattyCapOf(config: RouterConfig): ChattyCap {
  return { max: config.ROUTER_CHATTY_CAP, windowMs: config.ROUTER_CHATTY_WINDOW };
}
