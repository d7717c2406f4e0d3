/**
 * The consumer runtime's knobs as environment variables, shared by every service so an operator
 * tunes retries, concurrency and the DLQ breaker the same way everywhere.
 */
import type { ConfigOf } from '../config/load.ts';
import { duration, durations, int } from '../config/vars.ts';
import { type ConsumerRuntimeOptions, RUNTIME_DEFAULTS as D } from '../kafka/consumer-runtime.ts';

export const consumerSpec = {
  CONSUMER_CONCURRENCY: int({
    default: D.concurrency,
    min: 1,
    max: 10_000,
    help: 'records handled at once per process',
  }),
  RETRY_DELAYS: durations({
    default: [...D.retryDelaysMs],
    help: 'one retry topic per delay; a record failing after the last one goes to the DLQ',
  }),
  DLQ_BREAKER_THRESHOLD: int({
    default: D.breaker.threshold,
    min: 0,
    help: 'dead letters within the window that pause consumption (0: never)',
  }),
  DLQ_BREAKER_WINDOW: duration({ default: D.breaker.windowMs, min: 1 }),
  DLQ_BREAKER_COOLDOWN: duration({
    default: D.breaker.cooldownMs,
    min: 1,
    help: 'how long the breaker holds consumption paused',
  }),
  CONSUMER_SESSION_TIMEOUT: duration({
    default: D.sessionTimeoutMs,
    min: 6_000,
    help: 'how long the group waits for a silent member before moving its partitions to others',
  }),
  CHECKPOINT_INTERVAL: duration({
    default: D.checkpointIntervalMs,
    min: 100,
    help: 'how often failover checkpoints are published',
  }),
  CHECKPOINT_CAUGHT_UP_INTERVAL: duration({
    default: D.caughtUpIntervalMs,
    min: 100,
    help: 'how often partitions at their log end are checkpointed as caught up (bounds how far an idle partition holds a failover back)',
  }),
  CONSUMER_TOPIC_REFRESH: duration({
    default: D.topicRefreshIntervalMs,
    min: 100,
    help: 'how often a consumer looks for topics of its stream that appeared since it started',
  }),
};

export type ConsumerConfig = ConfigOf<typeof consumerSpec>;

export function runtimeTuning(config: ConsumerConfig) {
  return {
    concurrency: config.CONSUMER_CONCURRENCY,
    retryDelaysMs: config.RETRY_DELAYS,
    breaker: {
      threshold: config.DLQ_BREAKER_THRESHOLD,
      windowMs: config.DLQ_BREAKER_WINDOW,
      cooldownMs: config.DLQ_BREAKER_COOLDOWN,
    },
    checkpointIntervalMs: config.CHECKPOINT_INTERVAL,
    caughtUpIntervalMs: config.CHECKPOINT_CAUGHT_UP_INTERVAL,
    sessionTimeoutMs: config.CONSUMER_SESSION_TIMEOUT,
    topicRefreshIntervalMs: config.CONSUMER_TOPIC_REFRESH,
  } satisfies Partial<ConsumerRuntimeOptions<'notify.event', unknown>>;
}
