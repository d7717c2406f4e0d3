/**
 * "Caught up as of": the checkpoints of partitions a group is not moving on.
 *
 * The runtime checkpoints a partition when its committed offset moves, with the time of the last
 * record processed. A partition that is idle (a quiet prefix, an empty retry topic, a group that has
 * consumed nothing) would keep its last record's time, days old, or have no checkpoint at all, and
 * failover restarts a group from its earliest checkpoint. So every probe interval the partitions
 * assigned to this member are compared with their log ends: one whose committed offset is at the end
 * gets a checkpoint saying so, with the time the end was read. Every record appended before that
 * time is processed; a record appended later is newer than it (less clock skew and mirror lag, which
 * the failover margin covers).
 *
 * The comparison is made with the broker's committed offsets, not the runtime's memory, so what a
 * probe says is true whichever member publishes it, during a rebalance too.
 */
import type { Admin, Kafka } from 'kafkajs';
import type { Checkpointer } from './checkpointer.ts';

export interface CaughtUpProbe {
  assigned(assignment: Readonly<Record<string, readonly number[]>>): void;
  unassigned(): void;
  /** Marks this member's partitions that are at their log end on the checkpointer. */
  probe(): Promise<void>;
  /** Disconnects the probe's admin client, after the last probe. */
  close(): Promise<void>;
}

export function createCaughtUpProbe(opts: {
  kafka: Kafka;
  group: string;
  checkpointer: Checkpointer;
  now?: () => number;
}): CaughtUpProbe {
  const { kafka, group, checkpointer, now = Date.now } = opts;
  let assignment: Readonly<Record<string, readonly number[]>> = {};
  let running: Promise<void> | null = null;
  // One connection for the runtime's life: a connect per probe costs more than the probe.
  let admin: Promise<Admin> | null = null;
  const connected = () => {
    admin ??= (async () => {
      const a = kafka.admin();
      await a.connect();
      return a;
    })().catch((error: unknown) => {
      admin = null;
      throw error;
    });
    return admin;
  };

  async function probeWith(admin: Admin) {
    const topics = Object.entries(assignment).filter(([, partitions]) => partitions.length > 0);
    if (topics.length === 0) return;
    // Taken before the log ends are read: a record appended before this instant is below them.
    const at = now();
    const ends = await Promise.all(topics.map(([topic]) => admin.fetchTopicOffsets(topic)));
    const committed = await admin.fetchOffsets({ groupId: group, topics: topics.map(([t]) => t) });
    topics.forEach(([topic, partitions], i) => {
      const offsets = committed.find((c) => c.topic === topic)?.partitions ?? [];
      for (const partition of partitions) {
        const bounds = ends[i]!.find((b) => b.partition === partition);
        if (!bounds) continue;
        const end = BigInt(bounds.high);
        // No commit, or one below the log start (retention took the records): the group reads from
        // the log start, which counts as its position.
        const offset = BigInt(offsets.find((p) => p.partition === partition)?.offset ?? '-1');
        const position = offset > BigInt(bounds.low) ? offset : BigInt(bounds.low);
        if (position >= end) checkpointer.caughtUp(topic, partition, position, at);
      }
    });
  }

  return {
    assigned(next) {
      assignment = next;
    },
    unassigned() {
      assignment = {};
    },
    probe() {
      // A slow cluster must not pile probes up: a call during one joins it.
      running ??= (async () => probeWith(await connected()))().finally(() => {
        running = null;
      });
      return running;
    },
    async close() {
      await running?.catch(() => undefined);
      const open = admin;
      admin = null;
      if (open) await (await open.catch(() => null))?.disconnect();
    },
  };
}
