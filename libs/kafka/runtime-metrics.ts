/**
 * The consumer runtime's metrics. Several runtimes share a process registry (a service may run a
 * consumer per stream), so each metric is created once and labelled by group.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type RuntimeMetrics = ReturnType<typeof createRuntimeMetrics>;

export function createRuntimeMetrics(registry: Registry) {
  const get = <M>(name: string, make: () => M): M =>
    (registry.getSingleMetric(name) as M | undefined) ?? make();
  return {
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
    handleSeconds: get(
      'tidings_consumer_handle_seconds',
      () =>
        new Histogram({
          name: 'tidings_consumer_handle_seconds',
          help: 'Time a handler took for one record',
          labelNames: ['group'],
          buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
          registers: [registry],
        }),
    ),
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
    paused: get(
      'tidings_consumer_paused',
      () =>
        new Gauge({
          name: 'tidings_consumer_paused',
          help: '1 while consumption is paused (backpressure or DLQ breaker)',
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
