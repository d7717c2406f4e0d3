/**
 * Burrow's consumer lag evaluation (github.com/linkedin/Burrow wiki, "Consumer Lag Evaluation
 * Rules", and its evaluator's partition rules): no threshold on lag, only how a partition's
 * committed offset and lag behave over a sliding window of samples.
 *
 * Burrow stores one window entry per offset commit, with the commit's timestamp. Kafka's
 * OffsetFetch does not return commit times, so our window holds periodic samples instead, and
 * the "stopped" rule (last commit older than the window span) becomes what we can observe: the
 * group has no live member, so nothing will commit. Everything else follows Burrow, in its order:
 *
 *   lag now 0                                   → OK
 *   lag > 0 and no member consumes              → STOP   (Burrow: commits stopped)
 *   the committed offset went backwards and has
 *   not yet come back to where it was           → REWIND (checked before zero lag, Burrow #716)
 *   some sample in the window had lag 0         → OK     (the consumer caught up inside the window)
 *   offset unchanged across the window          → STALL  (members, but not advancing)
 *   lag never decreased between two samples     → WARN   (advancing, but falling behind)
 *   otherwise                                   → OK
 *
 * A group is ERR when any partition is STOP, STALL or REWIND, WARN when any is WARN, else OK.
 */

export type PartitionStatus = 'OK' | 'WARN' | 'STOP' | 'STALL' | 'REWIND';
export type GroupStatus = 'OK' | 'WARN' | 'ERR';

export interface LagSample {
  /** When the sample was taken, ms since the epoch. */
  at: number;
  committedOffset: number;
  lag: number;
}

export interface PartitionWindow {
  /** Oldest first. */
  samples: readonly LagSample[];
  /** Whether the group has a live member (one that would commit if it could). */
  consuming: boolean;
}

export function evaluatePartition({ samples, consuming }: PartitionWindow): PartitionStatus {
  const latest = samples.at(-1);
  if (latest === undefined || latest.lag <= 0) return 'OK';
  if (!consuming) return 'STOP';
  if (unrecoveredRewind(samples)) return 'REWIND';
  if (samples.some((s) => s.lag <= 0)) return 'OK';
  if (samples.length < 2) return 'OK';
  const steps = samples.slice(1).map((s, i) => ({ before: samples[i] as LagSample, after: s }));
  if (steps.every(({ before, after }) => after.committedOffset === before.committedOffset)) return 'STALL';
  if (steps.every(({ before, after }) => after.lag >= before.lag)) return 'WARN';
  return 'OK';
}

/** The offset went backwards at some step and the newest offset is still below where it was. */
function unrecoveredRewind(samples: readonly LagSample[]): boolean {
  let highest = Number.NEGATIVE_INFINITY;
  let rewoundFrom: number | undefined;
  for (const s of samples) {
    if (s.committedOffset < highest) rewoundFrom = highest;
    highest = Math.max(highest, s.committedOffset);
  }
  const latest = samples.at(-1);
  return rewoundFrom !== undefined && latest !== undefined && latest.committedOffset < rewoundFrom;
}

export function groupStatus(partitions: readonly PartitionStatus[]): GroupStatus {
  if (partitions.some((s) => s === 'STOP' || s === 'STALL' || s === 'REWIND')) return 'ERR';
  if (partitions.includes('WARN')) return 'WARN';
  return 'OK';
}

const SEVERITY: Record<GroupStatus, number> = { OK: 0, WARN: 1, ERR: 2 };

/** The exit code a script sees: 0, 1, 2 for the worst of OK, WARN, ERR. */
export function statusExitCode(groups: readonly GroupStatus[]): number {
  return Math.max(0, ...groups.map((g) => SEVERITY[g]));
}

/** Keeps the newest `size` samples: the sliding window. */
export function slide(samples: readonly LagSample[], next: LagSample, size: number): LagSample[] {
  return [...samples, next].slice(-size);
}
