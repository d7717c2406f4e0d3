/**
 * Planning a datacenter failover: from the checkpoints the lost datacenter's consumers published
 * (read from the mirrored `<from>.notify.checkpoint` on the surviving cluster), the time each group
 * restarts from and the topics it restarts on.
 *
 * A group restarts from one time T for all its partitions: the earliest record time among its
 * checkpoints, minus a margin. Not per partition, because the partitions of a mirrored copy do not
 * map offsets (MirrorMaker keeps timestamps, not offsets) and a group restarts on both prefixes, so
 * a per-partition position has nothing to land on there. T must be a time every partition had
 * passed; the earliest checkpoint is the one such time, and the margin covers records the lost
 * side had processed but not yet checkpointed or mirrored. What T re-delivers, the sinks'
 * deduplication on notification_id absorbs.
 */
import { parseTopic, topicFor } from './topics.ts';

/** One checkpoint as the runtime publishes it (notify.checkpoint, decoded). */
export interface Checkpoint {
  group: string;
  topic: string;
  partition: number;
  /** Kafka timestamp of the last record the group processed on this partition. */
  recordTime: number;
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
  earliestRecordTime: number;
  latestRecordTime: number;
  /** T: where every topic of the group restarts, by record timestamp. */
  restartAt: number;
  /** Streams the group consumed (topic names without their datacenter prefix), sorted. */
  streams: string[];
}

/** Per group (sorted by name): its checkpoint summary and restart time T. */
export function groupRestarts(checkpoints: readonly Checkpoint[], marginMs: number): GroupRestart[] {
  const byGroup = Map.groupBy(checkpoints, (c) => c.group);
  return [...byGroup.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([group, list]) => {
      const times = list.map((c) => c.recordTime);
      const earliest = Math.min(...times);
      return {
        group,
        checkpoints: list.length,
        earliestRecordTime: earliest,
        latestRecordTime: Math.max(...times),
        restartAt: earliest - marginMs,
        streams: [...new Set(list.map((c) => parseTopic(c.topic).stream))].sort(),
      };
    });
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
