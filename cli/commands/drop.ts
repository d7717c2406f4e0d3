/**
 * `tidings drop`: get rid of a flood.
 *   --group G (--until <time> | --to-latest) [--topic T...]  moves the group forward past it;
 *   --topic T (--before <time> | --before-offset N --partition P)  deletes the records.
 * Plan by default, --execute to act. Compacted topics are refused: they hold state (the latest
 * record per key), and skipping or deleting part of it leaves consumers with a wrong picture.
 */
import type { Command } from 'commander';
import type { Admin } from 'kafkajs';
import { readPositions } from '../../libs/kafka/group-offsets.ts';
import { partitionKey, planMoves } from '../../libs/kafka/offset-plan.ts';
import { offsetsAt } from '../../libs/kafka/offsets-at-time.ts';
import { readTopics } from '../../libs/kafka/topic-plan.ts';
import { type CliContext, CliError, contextOf, EXIT, usageError } from '../context.ts';
import { showOrApply } from '../group-moves.ts';
import { progress, withKafka } from '../kafka-session.ts';
import { pointInTime } from '../time-option.ts';

interface DropOptions {
  group?: string;
  until?: string;
  toLatest?: boolean;
  topic?: string[];
  before?: string;
  beforeOffset?: string;
  partition?: string;
  execute?: boolean;
  rollbackFile?: string;
}

export function dropCommand(program: Command): void {
  program
    .command('drop')
    .description('skip a flood for a group, or delete records of a topic (plan unless --execute)')
    .option('--group <group>', 'move this group forward')
    .option('--until <time>', 'with --group: skip what arrived before this time (ISO-8601 with zone, or 2h)')
    .option('--to-latest', 'with --group: skip everything not yet processed')
    .option('--topic <topic...>', 'topics to act on (with --group default: all it has offsets for)')
    .option('--before <time>', 'without --group: delete records older than this time')
    .option('--before-offset <n>', 'without --group: delete records before this offset of --partition')
    .option('--partition <p>', 'the partition --before-offset applies to')
    .option('--execute', 'act on the plan')
    .option(
      '--rollback-file <path>',
      'with --group --execute: where to write the previous offsets first (default ./tidings-rollback-<group>-<epoch ms>.json)',
    )
    .action(async (options: DropOptions, command: Command) => {
      const ctx = contextOf(command);
      if (options.group !== undefined) await dropForGroup(ctx, options.group, options);
      else await deleteRecords(ctx, options);
    });
}

async function dropForGroup(ctx: CliContext, group: string, options: DropOptions): Promise<void> {
  if ((options.until === undefined) === (options.toLatest === undefined)) {
    throw usageError('--group needs exactly one of --until <time> or --to-latest');
  }
  const until = options.until === undefined ? undefined : pointInTime(options.until, '--until');
  await withKafka(ctx, async (kafka, admin) => {
    const positions = await readPositions(admin, group, options.topic);
    const topics = [...new Set(positions.map((p) => p.topic))];
    await refuseCompacted(admin, topics);
    const targets =
      until === undefined
        ? new Map(positions.map((p) => [partitionKey(p.topic, p.partition), p.end] as const))
        : await offsetsAt(admin, topics, until);
    await showOrApply(ctx, kafka, admin, group, planMoves(positions, targets, 'forward'), {
      execute: options.execute ?? false,
      rollbackFile: options.rollbackFile ?? `tidings-rollback-${group}-${Date.now()}.json`,
    });
  });
}

async function deleteRecords(ctx: CliContext, options: DropOptions): Promise<void> {
  const topic = options.topic?.[0];
  if (topic === undefined || options.topic?.length !== 1) {
    throw usageError('drop needs --group G, or --topic T (one topic) to delete records from');
  }
  if ((options.before === undefined) === (options.beforeOffset === undefined)) {
    throw usageError('--topic needs exactly one of --before <time> or --before-offset N --partition P');
  }
  const offset =
    options.beforeOffset === undefined ? undefined : nonNegativeInt(options.beforeOffset, '--before-offset');
  if (offset !== undefined && options.partition === undefined)
    throw usageError('--before-offset needs --partition');
  const partition =
    options.partition === undefined ? undefined : nonNegativeInt(options.partition, '--partition');
  const before = options.before === undefined ? undefined : pointInTime(options.before, '--before');
  await withKafka(ctx, async (_kafka, admin) => {
    await refuseCompacted(admin, [topic]);
    const bounds = await admin.fetchTopicOffsets(topic);
    const targets =
      before === undefined
        ? new Map([[partitionKey(topic, partition ?? 0), offset ?? 0]])
        : await offsetsAt(admin, [topic], before);
    if (partition !== undefined && !bounds.some((b) => b.partition === partition)) {
      throw usageError(`${topic} has no partition ${partition}`);
    }
    const plan = bounds.flatMap((b) => {
      const target = targets.get(partitionKey(topic, b.partition));
      if (target === undefined) return [];
      const low = Number(b.low);
      const next = Math.min(Math.max(target, low), Number(b.high));
      return [{ topic, partition: b.partition, low, 'new-low': next, records: next - low }];
    });
    const effective = plan.filter((p) => p.records > 0);
    if (options.execute && effective.length > 0) {
      progress(`deleting records of ${topic} on ${effective.length} partition(s)`);
      await admin.deleteTopicRecords({
        topic,
        partitions: effective.map((p) => ({ partition: p.partition, offset: String(p['new-low']) })),
      });
    }
    ctx.print(
      plan.map((p) => ({ ...p, action: p.records === 0 ? 'none' : options.execute ? 'deleted' : 'plan' })),
      ['topic', 'partition', 'low', 'new-low', 'records', 'action'],
    );
    if (!options.execute) progress('plan only: nothing changed (run with --execute to apply)');
  });
}

async function refuseCompacted(admin: Admin, topics: readonly string[]): Promise<void> {
  const existing = await readTopics(admin, topics);
  for (const topic of topics) {
    const found = existing.get(topic);
    if (found === undefined) throw new CliError(`topic ${topic} does not exist`, EXIT.problem);
    if (found.config['cleanup.policy']?.includes('compact')) {
      throw new CliError(
        `${topic} is compacted (cleanup.policy=${found.config['cleanup.policy']}): it holds state per key, dropping part of it is refused`,
        EXIT.problem,
      );
    }
  }
}

function nonNegativeInt(text: string, name: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) throw usageError(`${name} must be an integer >= 0, got "${text}"`);
  return n;
}
