/**
 * `tidings replay --group G --since <time|duration> [--topic T...] [--execute]`: moves a group
 * back so it processes again what arrived since a time; `replay --from-file F` restores the
 * offsets a rollback file holds. Plan by default; --execute applies, and only while the group has
 * no members (a live consumer would overwrite the offsets with its next commit).
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { DEDUP_RETENTION_MS, REPLAY_LIMIT_MS } from '../../libs/config/retention.ts';
import { readPositions } from '../../libs/kafka/group-offsets.ts';
import { parseRollbackFile, partitionKey, planMoves } from '../../libs/kafka/offset-plan.ts';
import { offsetsAt } from '../../libs/kafka/offsets-at-time.ts';
import { contextOf, usageError } from '../context.ts';
import { showOrApply } from '../group-moves.ts';
import { withKafka } from '../kafka-session.ts';
import { pointInTime } from '../time-option.ts';

interface ReplayOptions {
  group?: string;
  since?: string;
  topic?: string[];
  fromFile?: string;
  execute?: boolean;
  rollbackFile?: string;
}

export function replayCommand(program: Command): void {
  program
    .command('replay')
    .description('move a group back to a time (plan unless --execute), or restore a rollback file')
    .option('--group <group>', 'consumer group to move')
    .option('--since <time>', 'ISO-8601 time with a zone (2026-11-21T10:00:00Z) or a duration back (2h)')
    .option('--topic <topic...>', 'topics to replay (default: every topic the group has offsets for)')
    .option('--from-file <path>', 'apply the offsets of a rollback file instead')
    .option('--execute', 'apply the plan')
    .option(
      '--rollback-file <path>',
      'where --execute writes the previous offsets first (default ./tidings-rollback-<group>-<epoch ms>.json)',
    )
    .action(async (options: ReplayOptions, command: Command) => {
      const ctx = contextOf(command);
      const execute = options.execute ?? false;
      if (options.fromFile !== undefined) {
        if (options.since !== undefined) throw usageError('--from-file and --since exclude each other');
        const file = readRollback(options.fromFile);
        if (options.group !== undefined && options.group !== file.group) {
          throw usageError(`${options.fromFile} is for group ${file.group}, not ${options.group}`);
        }
        const restorable = file.partitions.flatMap((p) =>
          p.offset === null ? [] : [[partitionKey(p.topic, p.partition), p.offset] as const],
        );
        const topics = [...new Set(file.partitions.map((p) => p.topic))];
        await withKafka(ctx, async (kafka, admin) => {
          const positions = await readPositions(admin, file.group, topics);
          const moves = planMoves(positions, new Map(restorable), 'any');
          await showOrApply(ctx, kafka, admin, file.group, moves, { execute });
        });
        return;
      }
      if (options.group === undefined) throw usageError('--group is required (or --from-file)');
      if (options.since === undefined) throw usageError('--since is required (or --from-file)');
      const group = options.group;
      const since = pointInTime(options.since, '--since');
      refuseBeyondDedup(since, Date.now());
      await withKafka(ctx, async (kafka, admin) => {
        const positions = await readPositions(admin, group, options.topic);
        const topics = [...new Set(positions.map((p) => p.topic))];
        const moves = planMoves(positions, await offsetsAt(admin, topics, since), 'back');
        await showOrApply(ctx, kafka, admin, group, moves, {
          execute,
          rollbackFile: options.rollbackFile ?? `tidings-rollback-${group}-${Date.now()}.json`,
        });
      });
    });
}

/**
 * Records older than the dedup retention are no longer recognized as done by the services' ledgers
 * (libs/config/retention.ts): replaying them would notify people again.
 */
function refuseBeyondDedup(since: number, now: number): void {
  if (now - since <= REPLAY_LIMIT_MS) return;
  const days = (ms: number) => `${Math.round((ms / 86_400_000) * 10) / 10} days`;
  throw usageError(
    `refusing to replay from ${new Date(since).toISOString()}, ${days(now - since)} back: the services ` +
      `deduplicate only ${days(DEDUP_RETENTION_MS)} of records, so replaying further than ${days(REPLAY_LIMIT_MS)} ` +
      `could notify people again; the earliest allowed is ${new Date(now - REPLAY_LIMIT_MS).toISOString()}`,
  );
}

function readRollback(path: string) {
  try {
    return parseRollbackFile(readFileSync(path, 'utf8'));
  } catch (error) {
    throw usageError(`${path} is not a rollback file: ${(error as Error).message}`);
  }
}
