/**
 * `tidings lag [--group G...] [--watch]`: consumer lag per group, topic and partition in
 * kafka-consumer-groups' columns, plus LAG-SECONDS and a Burrow-style status
 * (libs/kafka/lag-evaluator.ts) over a sliding window of samples. Exit 0/1/2 for the worst group
 * being OK/WARN/ERR.
 *
 * LAG-SECONDS is estimated from the newest sample: now minus the timestamp of the record at the
 * committed offset (the oldest record the group has not processed), read with a throwaway
 * consumer; blank when that record could not be read.
 */
import type { Command } from 'commander';
import type { Admin, Kafka } from 'kafkajs';
import { parseDuration } from '../../libs/config/duration.ts';
import {
  lagSeconds,
  listConsumerGroups,
  type PartitionLag,
  readGroupLag,
} from '../../libs/kafka/group-offsets.ts';
import {
  evaluatePartition,
  type GroupStatus,
  groupStatus,
  type LagSample,
  type PartitionStatus,
  slide,
  statusExitCode,
} from '../../libs/kafka/lag-evaluator.ts';
import { partitionKey } from '../../libs/kafka/offset-plan.ts';
import { type CliContext, CliError, contextOf, EXIT, usageError } from '../context.ts';
import { progress, withKafka } from '../kafka-session.ts';

interface LagOptions {
  group?: string[];
  watch?: boolean;
  interval?: string;
  samples: string;
  window: string;
}

const COLUMNS = [
  'group',
  'topic',
  'partition',
  'current-offset',
  'log-end-offset',
  'lag',
  'lag-seconds',
  'consumer-id',
  'host',
  'client-id',
  'status',
  'group-status',
];

export function lagCommand(program: Command): void {
  program
    .command('lag')
    .description('consumer lag and Burrow-style status per group and partition; exit 0/1/2 for OK/WARN/ERR')
    .option('--group <group...>', 'groups to report (default: every consumer group on the cluster)')
    .option('--watch', 'keep sampling and reprinting until interrupted')
    .option('--interval <duration>', 'time between samples (default 2s, or 5s with --watch)')
    .option('--samples <n>', 'samples to take before reporting, without --watch', '3')
    .option('--window <n>', 'samples the status is evaluated over', '10')
    .action(async (options: LagOptions, command: Command) => {
      const ctx = contextOf(command);
      const intervalMs = parseDuration(options.interval ?? (options.watch ? '5s' : '2s'));
      const samples = positiveInt(options.samples, '--samples');
      const window = positiveInt(options.window, '--window');
      if (intervalMs === undefined) throw usageError(`--interval "${options.interval}" is not a duration`);
      await withKafka(ctx, async (kafka, admin) => {
        const groups = options.group ?? (await listConsumerGroups(admin));
        const sampler = createSampler(admin, groups, window);
        if (!options.watch) {
          for (let i = 0; i < samples; i++) {
            if (i > 0) await sleep(intervalMs);
            progress(`sample ${i + 1}/${samples} of ${groups.length} group(s)`);
            await sampler.sample();
          }
          const unknown = options.group?.filter((_, i) => sampler.latest[i]?.partitions.length === 0) ?? [];
          if (unknown.length > 0) {
            throw new CliError(
              `no committed offsets and no members for group(s): ${unknown.join(', ')}`,
              EXIT.problem,
            );
          }
          process.exitCode = await report(ctx, kafka, sampler);
          return;
        }
        const stop = new AbortController();
        const onSignal = () => stop.abort();
        process.once('SIGINT', onSignal);
        try {
          while (!stop.signal.aborted) {
            await sampler.sample();
            progress(new Date().toISOString());
            process.exitCode = await report(ctx, kafka, sampler);
            await sleep(intervalMs, stop.signal);
          }
        } finally {
          process.off('SIGINT', onSignal);
        }
      });
    });
}

type Sampler = ReturnType<typeof createSampler>;

/** Keeps each partition's window of samples and the newest view of each group. */
function createSampler(admin: Admin, groups: readonly string[], window: number) {
  const windows = new Map<string, LagSample[]>();
  let latest: { partitions: PartitionLag[]; consuming: Map<string, boolean> }[] = [];
  return {
    async sample(): Promise<void> {
      latest = await Promise.all(
        groups.map(async (group) => {
          const { description, partitions } = await readGroupLag(admin, group);
          const at = Date.now();
          const consuming = new Map<string, boolean>();
          for (const p of partitions) {
            const key = `${group}|${partitionKey(p.topic, p.partition)}`;
            if (p.current !== null) {
              windows.set(
                key,
                slide(windows.get(key) ?? [], { at, committedOffset: p.current, lag: p.lag ?? 0 }, window),
              );
            }
            // While a group rebalances its members hold no assignment yet; they still consume.
            consuming.set(
              key,
              p.member !== undefined || (description.members.length > 0 && description.state !== 'Stable'),
            );
          }
          return { partitions, consuming };
        }),
      );
    },
    status(group: string, p: PartitionLag, consuming: Map<string, boolean>): PartitionStatus {
      const key = `${group}|${partitionKey(p.topic, p.partition)}`;
      return evaluatePartition({ samples: windows.get(key) ?? [], consuming: consuming.get(key) ?? false });
    },
    get latest() {
      return latest;
    },
  };
}

async function report(ctx: CliContext, kafka: Kafka, sampler: Sampler): Promise<number> {
  const rows: Record<string, unknown>[] = [];
  const statuses: GroupStatus[] = [];
  for (const { partitions, consuming } of sampler.latest) {
    const seconds = await lagSeconds(kafka, partitions, Date.now);
    const partitionStatuses = partitions.map((p) => sampler.status(p.group, p, consuming));
    const group = groupStatus(partitionStatuses);
    statuses.push(group);
    partitions.forEach((p, i) => {
      const s = seconds.get(partitionKey(p.topic, p.partition));
      rows.push({
        group: p.group,
        topic: p.topic,
        partition: p.partition,
        'current-offset': p.current,
        'log-end-offset': p.end,
        lag: p.lag,
        'lag-seconds': s === undefined ? null : Math.round(s * 10) / 10,
        'consumer-id': p.member?.memberId ?? null,
        host: p.member?.host ?? null,
        'client-id': p.member?.clientId ?? null,
        status: partitionStatuses[i],
        'group-status': group,
      });
    });
  }
  ctx.print(rows, COLUMNS);
  return statusExitCode(statuses);
}

function positiveInt(text: string, name: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw usageError(`${name} must be a positive integer, got "${text}"`);
  return n;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}
