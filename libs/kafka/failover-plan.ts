/**
 * Planning a datacenter failover: from the checkpoints the lost datacenter's consumers published
 * (read from the mirrored `<from>.notify.checkpoint` on the surviving cluster), the time each group
 * restarts from and the topics it restarts on.
 *
 * A group restarts from one time T for all its checkpointed partitions: the earliest progress among
 * its checkpoints, minus a margin. A checkpoint's progress is the time before which the partition
 * holds nothing the group had not processed: when the group was at the log end, the time it was
 * (caught-up-probe.ts), else the last record's time. Not per partition, because MirrorMaker keeps
 * timestamps but not offsets, and one time is what an operator can reason about; the margin covers
 * records the lost side had processed but not yet checkpointed or mirrored. What T re-delivers,
 * the sinks' deduplication on notification_id absorbs.
 *
 * What must not move T: a checkpoint of a topic the group no longer reads (retired: gone from the
 * cluster, or, for a group of the topic plan, not among its topics) is left out. What must not
 * skip records: a partition the group reads without a checkpoint (never caught up, never processed
 * there, or the group consumed nothing at all) restarts at its log start.
 */
import { type PartitionPosition, partitionKey } from './offset-plan.ts';
import { parseTopic, topicFor } from './topics.ts';

/** One checkpoint as the runtime publishes it (notify.checkpoint, decoded). */
export interface Checkpoint {
  group: string;
  topic: string;
  partition: number;
  /** Kafka timestamp of the last record the group processed on this partition, if known. */
  recordTime: number | null;
  /** When the group was at this partition's log end, if it was. */
  caughtUpTo?: number | null;
}

/** No record of the partition older than this was left unprocessed, as far as `c` tells. */
export function progressOf(c: Checkpoint): number | null {
  return c.caughtUpTo ?? c.recordTime;
}

/** A record read from the checkpoint topic: value null is a tombstone (the key was erased). */
export interface CheckpointRecord {
  partition: number;
  offset: number;
  key: string;
  value: Checkpoint | null;
}

/**
 * The newest checkpoint per key (group|topic|partition), as compaction would leave it: the record
 * at the highest offset wins, whatever order the partitions were read in.
 */
export function latestCheckpoints(records: readonly CheckpointRecord[]): Checkpoint[] {
  const newest = new Map<string, CheckpointRecord>();
  for (const r of records) {
    const seen = newest.get(r.key);
    if (seen === undefined || r.offset > seen.offset) newest.set(r.key, r);
  }
  return [...newest.values()].flatMap((r) => (r.value === null ? [] : [r.value]));
}

export interface GroupRestart {
  group: string;
  /** Checkpoints (group partitions) the time is taken from. */
  checkpoints: number;
  /** Of those, how many say the group was at the log end. */
  caughtUp: number;
  /** Checkpoints of topics the group no longer reads, left out. */
  retired: number;
  earliestProgress: number | null;
  latestProgress: number | null;
  /** T: where every checkpointed partition restarts, by record timestamp; null without checkpoints. */
  restartAt: number | null;
  /** Streams the group consumed (topic names without their datacenter prefix), sorted. */
  streams: string[];
  /** `topic:partition` of the checkpoints counted; the group's other partitions restart at their log start. */
  checkpointed: ReadonlySet<string>;
}

export interface RestartOptions {
  /** Groups to plan, with or without checkpoints; default: every group that has some. */
  groups?: readonly string[];
  /** Whether the group still reads the topic; a checkpoint of one it does not is retired. */
  reads?: (group: string, topic: string) => boolean;
}

/** Per group (sorted by name): its checkpoint summary and restart time T. */
export function groupRestarts(
  checkpoints: readonly Checkpoint[],
  marginMs: number,
  { groups, reads = () => true }: RestartOptions = {},
): GroupRestart[] {
  const byGroup = Map.groupBy(checkpoints, (c) => c.group);
  const names = groups ?? [...byGroup.keys()];
  return [...new Set(names)]
    .sort((a, b) => a.localeCompare(b))
    .map((group) => {
      const all = byGroup.get(group) ?? [];
      const counted = all.filter((c) => reads(group, c.topic) && progressOf(c) !== null);
      const times = counted.map((c) => progressOf(c) as number);
      const earliest = times.length > 0 ? Math.min(...times) : null;
      return {
        group,
        checkpoints: counted.length,
        caughtUp: counted.filter((c) => c.caughtUpTo != null).length,
        retired: all.length - counted.length,
        earliestProgress: earliest,
        latestProgress: times.length > 0 ? Math.max(...times) : null,
        restartAt: earliest === null ? null : earliest - marginMs,
        streams: [...new Set(counted.map((c) => parseTopic(c.topic).stream))].sort(),
        checkpointed: new Set(counted.map((c) => partitionKey(c.topic, c.partition))),
      };
    });
}

/**
 * Where each partition of the group's topics restarts: a checkpointed one at the first record at or
 * after T (`atRestart`, keyed by `topic:partition`), any other at its log start.
 */
export function restartTargets(
  restart: GroupRestart,
  positions: readonly PartitionPosition[],
  atRestart: ReadonlyMap<string, number>,
): Map<string, number> {
  return new Map(
    positions.map((p) => {
      const key = partitionKey(p.topic, p.partition);
      const at = restart.checkpointed.has(key) ? atRestart.get(key) : undefined;
      return [key, at ?? p.low] as const;
    }),
  );
}

/**
 * The topics a group restarts on, on the surviving cluster: every stream it consumed under both
 * prefixes (the mirrored copy of `from` and the local `to`), plus the retry topics of those streams
 * it already has offsets for there. Topics the cluster does not hold are left out.
 */
export function restartTopics(
  restart: GroupRestart,
  dcs: { from: string; to: string },
  present: ReadonlySet<string>,
  committedTopics: readonly string[],
): string[] {
  const topics = new Set(restart.streams.flatMap((s) => [topicFor(dcs.from, s), topicFor(dcs.to, s)]));
  const retryOf = (topic: string) =>
    restart.streams.some((s) =>
      [dcs.from, dcs.to].some(
        (dc) => topic.startsWith(`${topicFor(dc, s)}.`) && /\.retry-[^.]+$/.test(topic),
      ),
    );
  for (const topic of committedTopics) if (retryOf(topic)) topics.add(topic);
  return [...topics].filter((t) => present.has(t)).sort();
}
