/**
 * Moving a consumer group's committed offsets (replay moves them back, drop moves them forward):
 * the plan as people review it, and the rollback file written before a plan is applied.
 */

export interface PartitionPosition {
  topic: string;
  partition: number;
  /** The group's committed offset; null when it never committed on this partition. */
  current: number | null;
  /** The partition's earliest and log-end offsets. */
  low: number;
  end: number;
}

export interface OffsetMove {
  topic: string;
  partition: number;
  current: number | null;
  next: number;
  /** Records the move makes the group process again (negative: records it skips); null if unknown. */
  records: number | null;
}

/**
 * Which way a move may go: a replay only moves a group back (never skipping what it has not
 * processed), a drop only forward (never re-delivering), a rollback wherever the file says.
 */
export type MoveDirection = 'back' | 'forward' | 'any';

/**
 * A move per partition to `targets` (keyed by `topic:partition`), clamped to what the log still
 * holds (a time before retention lands on the earliest record, one after the last on the log end)
 * and to `direction`: a partition the target would move the wrong way keeps its offset.
 */
export function planMoves(
  positions: readonly PartitionPosition[],
  targets: ReadonlyMap<string, number>,
  direction: MoveDirection,
): OffsetMove[] {
  return positions.flatMap((p) => {
    const target = targets.get(partitionKey(p.topic, p.partition));
    if (target === undefined) return [];
    const clamped = Math.min(Math.max(target, p.low), p.end);
    const next =
      p.current === null || direction === 'any'
        ? clamped
        : direction === 'back'
          ? Math.min(clamped, p.current)
          : Math.max(clamped, p.current);
    return [
      {
        topic: p.topic,
        partition: p.partition,
        current: p.current,
        next,
        records: p.current === null ? null : p.current - next,
      },
    ];
  });
}

export function partitionKey(topic: string, partition: number): string {
  return `${topic}:${partition}`;
}

export interface RollbackFile {
  group: string;
  createdAt: string;
  partitions: { topic: string; partition: number; offset: number | null }[];
}

export function rollbackFor(group: string, moves: readonly OffsetMove[], now: Date): RollbackFile {
  return {
    group,
    createdAt: now.toISOString(),
    partitions: moves.map((m) => ({ topic: m.topic, partition: m.partition, offset: m.current })),
  };
}

/** Validates a rollback file's content; the message names what is wrong. */
export function parseRollbackFile(text: string): RollbackFile {
  const data = JSON.parse(text) as Partial<RollbackFile>;
  if (typeof data?.group !== 'string' || data.group.length === 0) throw new Error('no "group" string');
  if (!Array.isArray(data.partitions)) throw new Error('no "partitions" array');
  data.partitions.forEach((p, i) => {
    const ok =
      typeof p?.topic === 'string' &&
      Number.isInteger(p.partition) &&
      (p.offset === null || (Number.isInteger(p.offset) && p.offset >= 0));
    if (!ok) throw new Error(`partitions[${i}] is not {topic, partition, offset: integer >= 0 | null}`);
  });
  return { group: data.group, createdAt: String(data.createdAt ?? ''), partitions: data.partitions };
}
