/**
 * `tidings failover --from eqiad --to codfw [--margin 5m] [--group G...] [--execute]`: after losing
 * a datacenter, repositions consumer groups on the surviving cluster by time. It reads the lost
 * side's checkpoints from their mirrored copy (`<from>.notify.checkpoint` on the `--to` cluster),
 * takes per group the earliest progress minus the margin (libs/kafka/failover-plan.ts says why the
 * earliest), and moves the group on both prefixes of its streams to the first record at or after
 * that time; a partition without a checkpoint goes to its log start. By default every group of the
 * topic plan moves, on every topic it reads there, also one that consumed nothing.
 *
 * Plan by default; --execute refuses while any selected group has members on the surviving
 * cluster, then per group writes a rollback file (`replay --from-file` restores it) and sets the
 * offsets. The plan goes to stdout, the checkpoint summary and progress to stderr.
 */
import { extname } from 'node:path';
import type { Command } from 'commander';
import type { Admin, Kafka } from 'kafkajs';
import { parseDuration } from '../../libs/config/duration.ts';
import { CHECKPOINT_STREAM } from '../../libs/kafka/checkpointer.ts';
import {
  type CheckpointRecord,
  type GroupRestart,
  groupRestarts,
  latestCheckpoints,
  restartTargets,
  restartTopics,
} from '../../libs/kafka/failover-plan.ts';
import { readPositions } from '../../libs/kafka/group-offsets.ts';
import { type OffsetMove, partitionKey, planMoves } from '../../libs/kafka/offset-plan.ts';
import { offsetsAt } from '../../libs/kafka/offsets-at-time.ts';
import { CONSUMERS, plannedGroupTopics } from '../../libs/kafka/topic-plan.ts';
import { readRanges } from '../../libs/kafka/topic-reader.ts';
import { assertDc, topicFor } from '../../libs/kafka/topics.ts';
import { createSerde, type Serde, SerdeError } from '../../libs/schemas/serde.ts';
import { CliError, EXIT, type GlobalOptions, resolveContext, usageError } from '../context.ts';
import { applyMoves, MOVE_COLUMNS, moveRows, refuseLiveGroup } from '../group-moves.ts';
import { progress, withKafka } from '../kafka-session.ts';
import { render } from '../output.ts';

interface FailoverOptions {
  from: string;
  to: string;
  margin: string;
  group?: string[];
  execute?: boolean;
  rollbackFile?: string;
}

const CHECKPOINT_READ_TIMEOUT_MS = 60_000;

export function failoverCommand(program: Command): void {
  program
    .command('failover')
    .description(
      "reposition groups on the surviving datacenter's cluster from the lost one's checkpoints (plan unless --execute)",
    )
    .requiredOption('--from <dc>', 'the datacenter lost (whose checkpoints are read)')
    .requiredOption(
      '--to <dc>',
      'the surviving datacenter (whose cluster is acted on; --brokers are its brokers)',
    )
    .option('--margin <duration>', 'how far before the earliest checkpoint to restart (e.g. 5m, 30s)', '5m')
    .option(
      '--group <group...>',
      "groups to move (default: every group of the topic plan's CONSUMERS, checkpoints or not)",
    )
    .option('--execute', 'apply the plan')
    .option(
      '--rollback-file <path>',
      'where --execute writes the previous offsets first; with several groups, -<group> is added before the extension (default ./tidings-rollback-<group>-<epoch ms>.json)',
    )
    .action(async (options: FailoverOptions, command: Command) => {
      const [from, to] = [dcOption(options.from, '--from'), dcOption(options.to, '--to')];
      if (from === to) throw usageError('--from and --to must be different datacenters');
      const marginMs = parseDuration(options.margin);
      if (marginMs === undefined)
        throw usageError(`--margin: "${options.margin}" is not a duration (e.g. 5m)`);
      const ctx = resolveContext({ ...command.optsWithGlobals<GlobalOptions>(), dc: to });
      const execute = options.execute ?? false;
      const serde = createSerde({ registryUrl: ctx.registryUrl, registryAccess: ctx.registryAccess });
      await withKafka(ctx, async (kafka, admin) => {
        const groups = options.group ?? [...new Set(CONSUMERS.map((c) => c.group))];
        const records = await readCheckpoints(kafka, admin, serde, { from, to }, groups);
        const present = new Set(await admin.listTopics());
        const restarts = selectGroups(
          groupRestarts(latestCheckpoints(records), marginMs, {
            groups,
            reads: (group, topic) =>
              present.has(topic) && (plannedGroupTopics(group, [from, to])?.includes(topic) ?? true),
          }),
          options.group !== undefined,
          { from, to },
        );
        progress(`checkpoints from ${from} on ${to} (margin ${options.margin}):`);
        process.stderr.write(render('table', restarts.map(summaryRow)));
        const plans = await planGroups(admin, restarts, { from, to }, present);
        if (execute) {
          for (const { restart } of plans) await refuseLiveGroup(admin, restart.group);
          const stamp = Date.now();
          for (const { restart, moves } of plans) {
            await applyMoves(
              kafka,
              restart.group,
              moves,
              rollbackPath(options, restart.group, plans.length, stamp),
            );
          }
        }
        ctx.print(
          plans.flatMap(({ restart, moves }) =>
            moveRows(restart.group, moves, execute).map((row) => {
              const checkpointed = restart.checkpointed.has(partitionKey(row.topic, row.partition));
              return {
                ...row,
                restart_at: restart.restartAt === null ? null : new Date(restart.restartAt).toISOString(),
                by: checkpointed ? 'restart time' : 'no checkpoint: log start',
              };
            }),
          ),
          [...MOVE_COLUMNS.slice(0, -1), 'restart_at', 'by', 'action'],
        );
        if (!execute) progress('plan only: nothing changed (run with --execute to apply)');
      });
    });
}

function dcOption(value: string, option: string): string {
  try {
    return assertDc(value);
  } catch (error) {
    throw usageError(`${option}: ${(error as Error).message}`);
  }
}

interface Dcs {
  from: string;
  to: string;
}

/** Every record of the mirrored checkpoint topic of `groups`, decoded. */
async function readCheckpoints(
  kafka: Kafka,
  admin: Admin,
  serde: Serde,
  { from, to }: Dcs,
  groups: readonly string[],
): Promise<CheckpointRecord[]> {
  const topic = topicFor(from, CHECKPOINT_STREAM);
  if (!(await admin.listTopics()).includes(topic)) {
    throw new CliError(
      `no checkpoint topic ${topic} on ${to}'s cluster: is MirrorMaker copying ${from}.* to ${to}?`,
      EXIT.problem,
    );
  }
  const bounds = await admin.fetchTopicOffsets(topic);
  const ranges = bounds.map((b) => ({
    topic,
    partition: b.partition,
    from: Number(b.low),
    to: Number(b.high),
  }));
  const wanted = groups.map((g) => `${g}|`);
  const raw: { partition: number; offset: number; key: string; value: Buffer | null }[] = [];
  const lastRead = new Map<number, number>();
  progress(`reading ${topic} (${ranges.reduce((n, r) => n + r.to - r.from, 0)} records at most)`);
  await readRanges(kafka, {
    ranges,
    timeoutMs: CHECKPOINT_READ_TIMEOUT_MS,
    onRecord: ({ partition, message }) => {
      const offset = Number(message.offset);
      lastRead.set(partition, offset);
      const key = message.key?.toString('utf8') ?? '';
      if (wanted.some((w) => key.startsWith(w))) {
        raw.push({ partition, offset, key, value: message.value });
      }
      return true;
    },
  });
  // A partial read could miss a group's earliest checkpoint and restart it too late, skipping records.
  const unread = ranges.filter((r) => r.to > r.from && (lastRead.get(r.partition) ?? -1) < r.to - 1);
  if (unread.length > 0) {
    throw new CliError(
      `could not read all of ${topic} within ${CHECKPOINT_READ_TIMEOUT_MS / 1000} s (partitions ${unread.map((r) => r.partition).join(', ')}); nothing changed`,
      EXIT.problem,
    );
  }
  const records: CheckpointRecord[] = [];
  for (const r of raw) {
    if (r.value === null) {
      records.push({ ...r, value: null });
      continue;
    }
    try {
      const c = await serde.decode(CHECKPOINT_STREAM, r.value);
      records.push({
        ...r,
        value: {
          group: c.group,
          topic: c.topic,
          partition: c.partition,
          recordTime: c.record_time,
          caughtUpTo: c.caught_up_to,
        },
      });
    } catch (error) {
      if (!(error instanceof SerdeError)) throw error;
      progress(`skipping checkpoint ${r.key} at ${topic}:${r.partition}@${r.offset}: ${error.message}`);
    }
  }
  return records;
}

/**
 * No checkpoint of any group means nothing was mirrored, not that nothing was consumed: refused. A
 * group named with --group needs checkpoints unless the topic plan says what it reads.
 */
function selectGroups(restarts: GroupRestart[], named: boolean, { from, to }: Dcs) {
  const hint = `is MirrorMaker copying ${topicFor(from, CHECKPOINT_STREAM)}?`;
  if (!named && restarts.every((r) => r.checkpoints === 0 && r.retired === 0))
    throw new CliError(`no checkpoints from ${from} on ${to}: ${hint}`, EXIT.problem);
  const missing = restarts
    .filter((r) => r.checkpoints === 0 && plannedGroupTopics(r.group, [from, to]) === undefined)
    .map((r) => r.group);
  if (named && missing.length > 0) {
    throw new CliError(
      `no checkpoints from ${from} on ${to} for group(s) ${missing.join(', ')} (${hint} did the group run in ${from}?)`,
      EXIT.problem,
    );
  }
  return restarts;
}

async function planGroups(
  admin: Admin,
  restarts: readonly GroupRestart[],
  dcs: Dcs,
  present: ReadonlySet<string>,
): Promise<{ restart: GroupRestart; moves: OffsetMove[] }[]> {
  const plans: { restart: GroupRestart; moves: OffsetMove[] }[] = [];
  for (const restart of restarts) {
    const planned = plannedGroupTopics(restart.group, [dcs.from, dcs.to]);
    const committed = (await admin.fetchOffsets({ groupId: restart.group })).map((t) => t.topic);
    const topics = planned
      ? planned.filter((t) => present.has(t)).sort()
      : restartTopics(restart, dcs, present, committed);
    if (topics.length === 0) {
      progress(`group ${restart.group}: none of its topics exist on ${dcs.to}; skipped`);
      continue;
    }
    if (restart.checkpoints === 0) {
      progress(
        `group ${restart.group}: no checkpoints from ${dcs.from}; every partition restarts at its log start`,
      );
    }
    const positions = await readPositions(admin, restart.group, topics);
    const atRestart =
      restart.restartAt === null ? new Map() : await offsetsAt(admin, topics, restart.restartAt);
    plans.push({
      restart,
      moves: planMoves(positions, restartTargets(restart, positions, atRestart), 'any'),
    });
  }
  return plans;
}

function summaryRow(r: GroupRestart) {
  const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
  return {
    group: r.group,
    checkpoints: r.checkpoints,
    caught_up: r.caughtUp,
    retired: r.retired,
    earliest_progress: iso(r.earliestProgress),
    latest_progress: iso(r.latestProgress),
    restart_at: iso(r.restartAt) ?? 'log start',
    streams: r.streams,
  };
}

function rollbackPath(options: FailoverOptions, group: string, groups: number, stamp: number): string {
  const file = options.rollbackFile;
  if (file === undefined) return `tidings-rollback-${group}-${stamp}.json`;
  if (groups === 1) return file;
  const ext = extname(file);
  return `${file.slice(0, file.length - ext.length)}-${group}${ext}`;
}
