/**
 * Exports the lag of a service's own consumer groups under kafka_exporter's metric names, so the
 * dashboards and alerts people already have for kafka_exporter work unchanged:
 *   kafka_consumergroup_lag{consumergroup, topic, partition}          records behind
 *   kafka_consumergroup_lag_seconds{consumergroup, topic, partition}  estimated time behind
 *
 * Seconds are estimated without reading records, the way Lightbend's kafka-lag-exporter does it:
 * each refresh remembers when each partition's log end reached which offset, and the lag in
 * seconds is how long ago the log end passed the group's committed offset (interpolated between
 * two refreshes). When the committed offset is older than the remembered history, the age of the
 * oldest refresh is reported: a lower bound, which keeps rising while the group stays stuck.
 */
import type { Admin, Kafka } from 'kafkajs';
import type { Registry } from 'prom-client';
import { gauge } from '../metrics/registry.ts';
import { readGroupLag } from './group-offsets.ts';

export interface EndSample {
  at: number;
  end: number;
}

/** Seconds since the log end passed `committed`; undefined without history. */
export function estimateLagSeconds(
  history: readonly EndSample[],
  committed: number,
  now: number,
): number | undefined {
  const latest = history.at(-1);
  if (latest === undefined) return undefined;
  if (committed >= latest.end) return 0;
  // The record at `committed` was written when the log end went from `committed` to `committed + 1`.
  const j = history.findIndex((s) => s.end > committed);
  const after = history[j] as EndSample;
  const before = history[j - 1];
  if (before === undefined) return Math.max(0, (now - after.at) / 1000);
  const share = (committed + 1 - before.end) / (after.end - before.end);
  return Math.max(0, (now - (before.at + share * (after.at - before.at))) / 1000);
}

export interface PartitionReading {
  group: string;
  topic: string;
  partition: number;
  /** null when the group has no committed offset here. */
  committed: number | null;
  end: number;
}

/** The two gauges and the log-end history behind the seconds estimate. */
export function createLagGauges(registry: Registry, historySize = 240) {
  const labelNames = ['consumergroup', 'topic', 'partition'] as const;
  const lag = gauge(registry, {
    name: 'kafka_consumergroup_lag',
    help: 'Records a consumer group is behind the log end, per partition',
    labelNames,
  });
  const lagSeconds = gauge(registry, {
    name: 'kafka_consumergroup_lag_seconds',
    help: 'Estimated seconds since the log end passed the consumer group committed offset, per partition',
    labelNames,
  });
  const histories = new Map<string, EndSample[]>();
  return {
    /** Replaces every series with `readings`: partitions no longer read disappear. */
    record(readings: readonly PartitionReading[], now: number): void {
      lag.reset();
      lagSeconds.reset();
      for (const r of readings) {
        const topicPartition = `${r.topic}:${r.partition}`;
        const history = [...(histories.get(topicPartition) ?? []), { at: now, end: r.end }].slice(
          -historySize,
        );
        histories.set(topicPartition, history);
        if (r.committed === null) continue;
        const labels = { consumergroup: r.group, topic: r.topic, partition: String(r.partition) };
        lag.set(labels, Math.max(0, r.end - r.committed));
        const seconds = estimateLagSeconds(history, r.committed, now);
        if (seconds !== undefined) lagSeconds.set(labels, seconds);
      }
    },
  };
}

export interface LagExporterOptions {
  kafka: Kafka;
  registry: Registry;
  /** The consumer groups the service owns; read at every refresh, so groups added later are exported. */
  groups: readonly string[];
  /** Default 15 s. */
  intervalMs?: number;
  log?: { warn(obj: object, msg?: string): void };
}

export interface LagExporter {
  /** Reads the lag once now; also what the timer does. */
  refresh(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts refreshing the lag gauges of `groups` every interval (the first time at once). */
export function startLagExporter({
  kafka,
  registry,
  groups,
  intervalMs = 15_000,
  log,
}: LagExporterOptions): LagExporter {
  const gauges = createLagGauges(registry);
  let admin: Admin | undefined;
  let running: Promise<void> = Promise.resolve();

  async function read(): Promise<void> {
    if (admin === undefined) {
      const connecting = kafka.admin();
      await connecting.connect();
      admin = connecting;
    }
    const connected = admin;
    const lags = await Promise.all(groups.map((group) => readGroupLag(connected, group)));
    gauges.record(
      lags.flatMap(({ partitions }) =>
        partitions.map((p) => ({
          group: p.group,
          topic: p.topic,
          partition: p.partition,
          committed: p.current,
          end: p.end,
        })),
      ),
      Date.now(),
    );
  }

  function refresh(): Promise<void> {
    running = running.then(read).catch((err: unknown) => log?.warn({ err }, 'consumer lag export failed'));
    return running;
  }

  void refresh();
  const timer = setInterval(() => void refresh(), intervalMs);
  timer.unref();
  return {
    refresh,
    async stop() {
      clearInterval(timer);
      await running;
      await admin?.disconnect();
    },
  };
}
