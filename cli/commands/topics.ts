/**
 * `tidings topics plan | apply`: the declared stream topics (libs/kafka/topic-plan.ts) on one
 * datacenter's cluster, for every datacenter prefix (local and mirrored copies).
 */

import type { Command } from 'commander';
import type { Admin } from 'kafkajs';
import {
  applyTopicPlan,
  desiredTopics,
  LOCAL_MAX_PARTITIONS,
  ownedTopics,
  planTopic,
  readTopics,
  TOPIC_PLAN,
  type TopicChange,
} from '../../libs/kafka/topic-plan.ts';
import { type CliContext, contextOf, usageError } from '../context.ts';
import { withKafka } from '../kafka-session.ts';

interface TopicsOptions {
  replicationFactor: string;
  prefixes?: string;
  maxPartitions?: string;
}

export function topicsCommand(program: Command): void {
  const topics = program.command('topics').description("the stream topics on a datacenter's cluster");

  withPlanOptions(topics.command('plan'))
    .description('show what apply would create or alter; changes nothing')
    .action((options: TopicsOptions, command: Command) =>
      withPlan(command, options, async (_admin, desired, existing) => ({
        rows: rows(desired.map((d) => planTopic(d, existing.get(d.topic)))),
      })),
    );

  withPlanOptions(topics.command('apply'))
    .description('create missing topics and set declared configs (partition counts are only reported)')
    .action((options: TopicsOptions, command: Command) =>
      withPlan(command, options, async (admin, desired, existing) => ({
        rows: rows(await applyTopicPlan(admin, desired, existing), {
          create: 'created',
          alter: 'altered',
          ok: 'ok',
        }),
      })),
    );
}

/** Reads the declared topics and what the cluster holds of them, then lets plan or apply act. */
async function withPlan(
  command: Command,
  options: TopicsOptions,
  act: (
    admin: Admin,
    desired: ReturnType<typeof desiredFor>,
    existing: Awaited<ReturnType<typeof readTopics>>,
  ) => Promise<{ rows: ReturnType<typeof rows> }>,
): Promise<void> {
  const ctx = contextOf(command);
  const desired = desiredFor(ctx, options);
  const result = await withKafka(ctx, async (_kafka, admin) =>
    act(
      admin,
      desired,
      await readTopics(
        admin,
        desired.map((d) => d.topic),
      ),
    ),
  );
  ctx.print(result.rows);
}

function withPlanOptions(command: Command): Command {
  return command
    .option('--replication-factor <n>', 'replicas per partition for new topics', '1')
    .option('--prefixes <dcs>', 'datacenter prefixes to hold topics for (default: every known datacenter)')
    .option(
      '--max-partitions <n>',
      `at most this many partitions per new topic; "local" is the local stack's ${LOCAL_MAX_PARTITIONS} (default: as declared)`,
    );
}

function desiredFor(ctx: CliContext, options: TopicsOptions) {
  const replicationFactor = Number(options.replicationFactor);
  if (!Number.isInteger(replicationFactor) || replicationFactor < 1) {
    throw usageError(`--replication-factor must be a positive integer, got "${options.replicationFactor}"`);
  }
  const maxPartitions =
    options.maxPartitions === undefined
      ? Number.POSITIVE_INFINITY
      : options.maxPartitions === 'local'
        ? LOCAL_MAX_PARTITIONS
        : Number(options.maxPartitions);
  if (
    !(maxPartitions >= 1 && (Number.isInteger(maxPartitions) || maxPartitions === Number.POSITIVE_INFINITY))
  ) {
    throw usageError(
      `--max-partitions must be a positive integer or "local", got "${options.maxPartitions}"`,
    );
  }
  const dcs = options.prefixes
    ? options.prefixes
        .split(',')
        .map((dc) => dc.trim())
        .filter((dc) => dc.length > 0)
    : ctx.knownDcs;
  try {
    return [
      ...desiredTopics(dcs, replicationFactor, TOPIC_PLAN, maxPartitions),
      ...ownedTopics(dcs, replicationFactor, { maxPartitions }),
    ];
  } catch (error) {
    throw usageError((error as Error).message);
  }
}

function rows(changes: readonly TopicChange[], verbs?: Record<TopicChange['action'], string>) {
  return changes.map((c) => ({
    topic: c.topic,
    action: verbs ? verbs[c.action] : c.action,
    changes: c.changes,
    warnings: c.warnings,
  }));
}
