/**
 * The one pause model of a consumer: which of its partitions may be fetched, composed from every
 * reason there is to hold them, and the only code that calls KafkaJS pause/resume.
 *
 * Reasons compose instead of overwriting each other:
 * - service-wide holds (a handler's hold, backpressure, the DLQ breaker) stop every partition,
 *   until a time, until a probe succeeds, or until released;
 * - per-partition due times (a retry topic's head record) stop one partition.
 * A partition is fetched only when no reason holds it. KafkaJS's own pause state is not trusted to
 * keep any of this: a topic-level pause clears partition pauses, a partition resume un-pauses its
 * topic's other partitions, and a consumer restart after a crash starts with nothing paused. So the
 * model always speaks in explicit partitions, and re-applies the whole picture after every group
 * join (which a restart goes through) and whenever a reason starts or ends.
 */
import type { TopicPartitions } from 'kafkajs';
import type { Logger } from 'pino';

export interface PauseTarget {
  pause(topics: TopicPartitions[]): void;
  resume(topics: TopicPartitions[]): void;
}

export type HoldUntil = { until: number } | { probe: () => Promise<boolean> };

/** The reason name a partition waiting for its due time is counted under. */
export const PARTITION_DUE_REASON = 'retry-due';

export interface PauseModel {
  /**
   * Holds every partition for `reason`: until a time (a later time for the same reason extends it),
   * or until `probe` resolves true (run every probe interval), or, with neither, until release().
   */
  hold(reason: string, how?: HoldUntil): void;
  release(reason: string): void;
  /** Holds one partition until `until` (ms since the epoch), alongside any service-wide hold. */
  holdPartition(topic: string, partition: number, until: number): void;
  /** True while any service-wide reason holds. */
  isHalted(): boolean;
  /** True while anything holds this partition. */
  isHeld(topic: string, partition: number): boolean;
  /** The partitions this member owns after a group join; re-applies every reason to them. */
  assigned(assignment: Readonly<Record<string, readonly number[]>>): void;
  /** The consumer lost its group state (a crash): nothing can be applied until the next join. */
  unassigned(): void;
  /** Makes KafkaJS's pause state match the model again. */
  apply(): void;
  /** Active reasons and how many partitions each holds, for the pause-reasons gauge. */
  reasons(): Map<string, number>;
  close(): void;
}

export interface PauseModelOptions {
  target: PauseTarget;
  log: Logger;
  probeIntervalMs: number;
  onChange?: (reasons: Map<string, number>) => void;
  now?: () => number;
}

interface Hold {
  until: number;
  probe?: () => Promise<boolean>;
  probing?: boolean;
}

export function createPauseModel(options: PauseModelOptions): PauseModel {
  const { target, log, probeIntervalMs, onChange, now = Date.now } = options;
  const holds = new Map<string, Hold>();
  const partitionDue = new Map<string, number>();
  let assignment: ReadonlyMap<string, readonly number[]> = new Map();
  let timer: NodeJS.Timeout | null = null;
  let closed = false;

  const id = (topic: string, partition: number) => `${topic}|${partition}`;

  /** Drops what has expired and starts probes that are due; returns the next time to look again. */
  function expire(at: number): number {
    let next = Number.POSITIVE_INFINITY;
    for (const [reason, hold] of holds) {
      if (hold.until > at) {
        next = Math.min(next, hold.until);
        continue;
      }
      if (!hold.probe) {
        holds.delete(reason);
        log.info({ reason }, 'consumption hold ended');
        continue;
      }
      if (!hold.probing) runProbe(reason, hold);
    }
    for (const [key, due] of partitionDue) {
      if (due <= at) partitionDue.delete(key);
      else next = Math.min(next, due);
    }
    return next;
  }

  function runProbe(reason: string, hold: Hold) {
    hold.probing = true;
    const settle = (ok: boolean) => {
      hold.probing = false;
      if (holds.get(reason) !== hold) return;
      if (ok) {
        holds.delete(reason);
        log.info({ reason }, 'probe succeeded: consumption hold ended');
      } else hold.until = now() + probeIntervalMs;
      apply();
    };
    hold.probe!().then(settle, (err: unknown) => {
      log.warn({ err, reason }, 'probe failed unexpectedly; trying again later');
      settle(false);
    });
  }

  function schedule(next: number) {
    if (timer) clearTimeout(timer);
    timer = null;
    if (closed || next === Number.POSITIVE_INFINITY) return;
    // Ref'd on purpose: a held consumer is still working, and stop() clears it.
    timer = setTimeout(apply, Math.max(0, next - now()));
  }

  // A timed hold past its time is over even before the timer drops it; a probed one lasts until it succeeds.
  const holding = (hold: Hold, at: number) => hold.probe !== undefined || hold.until > at;

  function isHalted() {
    // Asked once per record: no clock read while nothing holds.
    if (holds.size === 0) return false;
    const at = now();
    for (const hold of holds.values()) if (holding(hold, at)) return true;
    return false;
  }

  function reasons(): Map<string, number> {
    const counts = new Map<string, number>();
    let all = 0;
    for (const partitions of assignment.values()) all += partitions.length;
    for (const reason of holds.keys()) counts.set(reason, all);
    if (partitionDue.size > 0) counts.set(PARTITION_DUE_REASON, partitionDue.size);
    return counts;
  }

  function apply() {
    if (closed) return;
    const at = now();
    schedule(expire(at));
    const halted = holds.size > 0;
    const pause: TopicPartitions[] = [];
    const resume: TopicPartitions[] = [];
    for (const [topic, partitions] of assignment) {
      const held = partitions.filter((p) => halted || partitionDue.has(id(topic, p)));
      const free = partitions.filter((p) => !held.includes(p));
      if (held.length > 0) pause.push({ topic, partitions: held });
      if (free.length > 0) resume.push({ topic, partitions: free });
    }
    if (pause.length > 0) target.pause(pause);
    if (resume.length > 0) target.resume(resume);
    onChange?.(reasons());
  }

  return {
    hold(reason, how) {
      const existing = holds.get(reason);
      if (how && 'until' in how) {
        if (existing && existing.until >= how.until) return;
        if (!existing) log.warn({ reason, until: new Date(how.until).toISOString() }, 'consumption held');
        holds.set(reason, { until: how.until });
      } else if (how && 'probe' in how) {
        if (existing) return;
        log.warn({ reason, probe_interval_ms: probeIntervalMs }, 'consumption held until a probe succeeds');
        holds.set(reason, { until: now() + probeIntervalMs, probe: how.probe });
      } else {
        if (existing) return;
        holds.set(reason, { until: Number.POSITIVE_INFINITY });
      }
      apply();
    },
    release(reason) {
      if (holds.delete(reason)) apply();
    },
    holdPartition(topic, partition, until) {
      partitionDue.set(id(topic, partition), Math.max(until, partitionDue.get(id(topic, partition)) ?? 0));
      apply();
    },
    isHalted,
    isHeld(topic, partition) {
      return isHalted() || (partitionDue.get(id(topic, partition)) ?? 0) > now();
    },
    assigned(next) {
      assignment = new Map(Object.entries(next));
      apply();
    },
    unassigned() {
      assignment = new Map();
    },
    apply,
    reasons,
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      timer = null;
    },
  };
}
