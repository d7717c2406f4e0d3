/**
 * What replay, drop, failover and a rollback share once the moves are planned: print the plan, and
 * with --execute refuse while the group has members, write the rollback file, then commit the
 * offsets.
 */
import { writeFileSync } from 'node:fs';
import type { Admin, Kafka } from 'kafkajs';
import { commitGroupOffsets } from '../libs/kafka/commit-offsets.ts';
import { describeGroup, describeMembers } from '../libs/kafka/group-offsets.ts';
import { type OffsetMove, rollbackFor } from '../libs/kafka/offset-plan.ts';
import { type CliContext, CliError, EXIT } from './context.ts';
import { progress } from './kafka-session.ts';

export interface ApplyOptions {
  execute: boolean;
  /** Where to write the previous offsets first; none for a rollback being applied. */
  rollbackFile?: string;
}

export const MOVE_COLUMNS = ['group', 'topic', 'partition', 'current', 'new', 'records', 'action'] as const;

export async function showOrApply(
  ctx: CliContext,
  kafka: Kafka,
  admin: Admin,
  group: string,
  moves: readonly OffsetMove[],
  { execute, rollbackFile }: ApplyOptions,
): Promise<void> {
  if (execute) {
    await refuseLiveGroup(admin, group);
    await applyMoves(kafka, group, moves, rollbackFile);
  }
  ctx.print(moveRows(group, moves, execute), MOVE_COLUMNS);
  if (!execute) progress('plan only: nothing changed (run with --execute to apply)');
}

/** A live consumer would overwrite moved offsets with its next commit. */
export async function refuseLiveGroup(admin: Admin, group: string): Promise<void> {
  const { members } = await describeGroup(admin, group);
  if (members.length > 0) {
    throw new CliError(
      `group ${group} has ${members.length} active member(s): ${describeMembers(members)}; stop them first (offsets of a live group cannot be moved)`,
      EXIT.problem,
    );
  }
}

/** Writes the rollback file (if any) before committing the new offsets. */
export async function applyMoves(
  kafka: Kafka,
  group: string,
  moves: readonly OffsetMove[],
  rollbackFile: string | undefined,
): Promise<void> {
  if (rollbackFile !== undefined) {
    writeFileSync(rollbackFile, `${JSON.stringify(rollbackFor(group, moves, new Date()), null, 2)}\n`);
    progress(`previous offsets written to ${rollbackFile}`);
  }
  const topics = new Set(moves.map((m) => m.topic));
  progress(`moving ${group} on ${topics.size} topic(s), ${moves.length} partition(s)`);
  await commitGroupOffsets(
    kafka,
    group,
    moves.map((m) => ({ topic: m.topic, partition: m.partition, offset: String(m.next) })),
  );
}

export function moveRows(group: string, moves: readonly OffsetMove[], execute: boolean) {
  return moves.map((m) => ({
    group,
    topic: m.topic,
    partition: m.partition,
    current: m.current,
    new: m.next,
    records: m.records,
    action: execute ? 'moved' : 'plan',
  }));
}
