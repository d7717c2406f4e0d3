/**
 * What a consumer group looks like from the admin API: its members and which partitions each
 * holds, its committed offsets, the log ends, and the lag between them. Shared by `tidings lag`,
 * replay/drop and the services' lag exporter.
 */
import kafkajs, { type Admin, type Kafka } from 'kafkajs';
import type { PartitionPosition } from './offset-plan.ts';
import { READER_GROUP_PREFIX, readRanges } from './topic-reader.ts';

// kafkajs builds its exports with a spread, which hides these from ESM named imports.
const { AssignerProtocol } = kafkajs;

export interface GroupMember {
  memberId: string;
  clientId: string;
  host: string;
  /** topic → partitions assigned to this member. */
  assignment: Record<string, number[]>;
}

export interface GroupDescription {
  group: string;
  state: string;
  members: GroupMember[];
}

export async function describeGroup(admin: Admin, group: string): Promise<GroupDescription> {
  const { groups } = await admin.describeGroups([group]);
  const found = groups[0];
  return {
    group,
    state: found?.state ?? 'Dead',
    members: (found?.members ?? []).map((m) => ({
      memberId: m.memberId,
      clientId: m.clientId,
      host: m.clientHost,
      assignment: decodeAssignment(m.memberAssignment),
    })),
  };
}

function decodeAssignment(buffer: Buffer): Record<string, number[]> {
  if (buffer.length === 0) return {};
  try {
    return AssignerProtocol.MemberAssignment.decode(buffer)?.assignment ?? {};
  } catch {
    return {};
  }
}

/** "member-1 (client tidings-router on /10.0.0.1)", for refusals that must say who is in the way. */
export function describeMembers(members: readonly GroupMember[]): string {
  return members.map((m) => `${m.memberId} (client ${m.clientId} on ${m.host})`).join(', ');
}

/** Consumer groups on the cluster, without the CLI's own throwaway readers. */
export async function listConsumerGroups(admin: Admin): Promise<string[]> {
  const { groups } = await admin.listGroups();
  return groups
    .filter((g) => g.protocolType === 'consumer' || g.protocolType === '')
    .map((g) => g.groupId)
    .filter((id) => !id.startsWith(READER_GROUP_PREFIX))
    .sort();
}

/**
 * The group's committed offset and the log bounds of every partition of `topics` (default: the
 * topics it has committed offsets for).
 */
export async function readPositions(
  admin: Admin,
  group: string,
  topics?: readonly string[],
): Promise<PartitionPosition[]> {
  const present = new Set(await admin.listTopics());
  const missing = topics?.filter((t) => !present.has(t)) ?? [];
  if (missing.length > 0) throw new Error(`no such topic: ${missing.join(', ')}`);
  const committed = await admin.fetchOffsets({ groupId: group, ...(topics ? { topics: [...topics] } : {}) });
  // A group keeps offsets of topics deleted since; they have no log to compare with.
  const positions: PartitionPosition[] = [];
  for (const t of committed.filter((c) => present.has(c.topic))) {
    const bounds = await admin.fetchTopicOffsets(t.topic);
    for (const b of bounds) {
      const c = t.partitions.find((p) => p.partition === b.partition);
      const offset = c === undefined ? -1 : Number(c.offset);
      positions.push({
        topic: t.topic,
        partition: b.partition,
        current: offset >= 0 ? offset : null,
        low: Number(b.low),
        end: Number(b.high),
      });
    }
  }
  return positions.sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
}

export interface PartitionLag extends PartitionPosition {
  group: string;
  /** Log end minus committed offset; null when the group never committed here. */
  lag: number | null;
  member: GroupMember | undefined;
}

export async function readGroupLag(
  admin: Admin,
  group: string,
  topics?: readonly string[],
): Promise<{ description: GroupDescription; partitions: PartitionLag[] }> {
  const [description, positions] = await Promise.all([
    describeGroup(admin, group),
    readPositions(admin, group, topics),
  ]);
  const partitions = positions
    .map((p) => ({
      ...p,
      group,
      lag: p.current === null ? null : Math.max(0, p.end - p.current),
      member: description.members.find((m) => m.assignment[p.topic]?.includes(p.partition)),
    }))
    // Without a commit and without an owner, the group has never consumed this partition.
    .filter((p) => p.current !== null || p.member !== undefined);
  return { description, partitions };
}

/**
 * Estimated lag in seconds per `topic:partition`: now minus the timestamp of the first record the
 * group has not processed (the one at its committed offset), read with a throwaway consumer. A
 * partition without lag is 0 s behind; one whose record could not be read is absent.
 */
export async function lagSeconds(
  kafka: Kafka,
  partitions: readonly PartitionLag[],
  now: () => number,
): Promise<Map<string, number>> {
  const seconds = new Map<string, number>();
  const behind = partitions.filter((p) => p.current !== null && (p.lag ?? 0) > 0);
  for (const p of partitions) if (p.lag === 0) seconds.set(`${p.topic}:${p.partition}`, 0);
  await readRanges(kafka, {
    ranges: behind.map((p) => {
      const from = Math.max(p.current ?? 0, p.low);
      return { topic: p.topic, partition: p.partition, from, to: from + 1 };
    }),
    timeoutMs: 10_000,
    onRecord: ({ topic, partition, message }) => {
      seconds.set(`${topic}:${partition}`, Math.max(0, (now() - Number(message.timestamp)) / 1000));
      return true;
    },
  });
  return seconds;
}
