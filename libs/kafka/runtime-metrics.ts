/**
 * The consumer runtime's metrics. Several runtimes share a process registry (a service may run a
 * consumer per stream), so each metric is created once and labelled by group.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { HotHistogram } from '../metrics/hot-path.ts';
import { PARTITION_DUE_REASON } from './pause-model.ts';

export type RuntimeMetrics = ReturnType<typeof createRuntimeMetrics>;

// Per registry, the groups whose last heartbeat age the gauge reports when scraped.
const heartbeatClocks = new WeakMap<Registry, Map<string, () => number>>();
// Per registry and group, the pause reasons last reported, so a reason that ended reads 0.
const knownReasons = new WeakMap<Registry, Map<string, Set<string>>>();

export function createRuntimeMetrics(registry: Registry) {
  const get = <M>(name: string, make: () => M): M =>
    (registry.getSingleMetric(name) as M | undefined) ?? make();
  let clocks = heartbeatClocks.get(registry);
  if (!clocks) {
    clocks = new Map();
    heartbeatClocks.set(registry, clocks);
  }
  const ages = clocks;
  let reasonsByGroup = knownReasons.get(registry);
  if (!reasonsByGroup) {
    reasonsByGroup = new Map();
    knownReasons.set(registry, reasonsByGroup);
  }
  const seen = reasonsByGroup;
  const batches = get(
    'tidings_consumer_batches_total',
    () =>
      new Counter({
        name: 'tidings_consumer_batches_total',
        help: 'Fetched batches by step: fetched (every batch KafkaJS handed over), prepared (prepareBatch ran). Many fetched batches and few records handled mean a fetch loop',
        labelNames: ['group', 'step'],
        registers: [registry],
      }),
  );
  const pauseReasons = get(
    'tidings_consumer_pause_reasons',
    () =>
      new Gauge({
        name: 'tidings_consumer_pause_reasons',
        help: 'Partitions held per reason (a handler hold such as send-budget or retry-after, backpressure, dlq-breaker, retry-due); 0 once the reason ended',
        labelNames: ['group', 'reason'],
        registers: [registry],
      }),
  );
  const paused = get(
    'tidings_consumer_paused',
    () =>
      new Gauge({
        name: 'tidings_consumer_paused',
        help: '1 while consumption is paused service-wide (a hold, backpressure or the DLQ breaker)',
        labelNames: ['group'],
        registers: [registry],
      }),
  );
  get(
    'tidings_consumer_heartbeat_age_seconds',
    () =>
      new Gauge({
        name: 'tidings_consumer_heartbeat_age_seconds',
        help: 'Seconds since the consumer last heartbeated its group; past the session timeout the member is evicted',
        labelNames: ['group'],
        registers: [registry],
        collect() {
          for (const [group, age] of ages) this.set({ group }, age());
        },
      }),
  );
  return {
    batchesFetched: { inc: (labels: { group: string }) => batches.inc({ ...labels, step: 'fetched' }) },
    batchesPrepared: { inc: (labels: { group: string }) => batches.inc({ ...labels, step: 'prepared' }) },
    heartbeatAge(group: string, age: () => number) {
      ages.set(group, age);
    },
    setPauseReasons(group: string, reasons: ReadonlyMap<string, number>) {
      let known = seen.get(group);
      if (!known) {
        known = new Set();
        seen.set(group, known);
      }
      for (const reason of reasons.keys()) known.add(reason);
      for (const reason of known) pauseReasons.set({ group, reason }, reasons.get(reason) ?? 0);
      const serviceWide = [...reasons.keys()].some((r) => r !== PARTITION_DUE_REASON);
      paused.set({ group }, serviceWide ? 1 : 0);
    },
    records: get(
      'tidings_consumer_records_total',
      () =>
        new Counter({
          name: 'tidings_consumer_records_total',
          help: 'Records processed, by outcome (ok, retried, dead_lettered)',
          labelNames: ['group', 'outcome'],
          registers: [registry],
        }),
    ),
    deadLetters: get(
      'tidings_consumer_dead_letters_total',
      () =>
        new Counter({
          name: 'tidings_consumer_dead_letters_total',
          help: 'Records sent to the dead-letter topic, by reason',
          labelNames: ['group', 'reason'],
          registers: [registry],
        }),
    ),
    retries: get(
      'tidings_consumer_retries_total',
      () =>
        new Counter({
          name: 'tidings_consumer_retries_total',
          help: 'Records sent to a retry topic, by delay',
          labelNames: ['group', 'delay'],
          registers: [registry],
        }),
    ),
    // Observed once per record: a histogram without per-observation label handling.
    handleSeconds: HotHistogram.on(registry, {
      name: 'tidings_consumer_handle_seconds',
      help: 'Time a handler took for one record',
      labelName: 'group',
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    }),
    inFlight: get(
      'tidings_consumer_in_flight',
      () =>
        new Gauge({
          name: 'tidings_consumer_in_flight',
          help: 'Records being handled',
          labelNames: ['group'],
          registers: [registry],
        }),
    ),
    breakerOpen: get(
      'tidings_consumer_dlq_breaker_open',
      () =>
        new Gauge({
          name: 'tidings_consumer_dlq_breaker_open',
          help: '1 while the DLQ-rate breaker holds consumption paused',
          labelNames: ['group'],
          registers: [registry],
        }),
    ),
    breakerRecent: get(
      'tidings_consumer_dlq_recent',
      () =>
        new Gauge({
          name: 'tidings_consumer_dlq_recent',
          help: 'Dead letters within the breaker window',
          labelNames: ['group'],
          registers: [registry],
        }),
    ),
    lastProcessed: get(
      'tidings_consumer_last_committed_record_timestamp_seconds',
      () =>
        new Gauge({
          name: 'tidings_consumer_last_committed_record_timestamp_seconds',
          help: 'Kafka timestamp of the last committed record per partition',
          labelNames: ['group', 'topic', 'partition'],
          registers: [registry],
        }),
    ),
  };
}
