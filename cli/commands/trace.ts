/**
 * `tidings trace --user U | --event E | --notification N [--since T]`: the story of each
 * notification across stages, from the delivery trail (notify.status of every datacenter prefix on
 * this cluster), in time order, with where it stands now: delivered, not delivered and why, or
 * pending until when.
 *
 * Bounded reads: the trail is keyed by recipient, so --user reads one partition per prefix; --event
 * and --notification read every partition, so they are bounded by --since (default 24h, against
 * 168h for --user). A decision taken twice (a replay, the mirrored copy) is shown once.
 */
import type { Command } from 'commander';
import type { Admin } from 'kafkajs';
import { partitionForKey } from '../../libs/kafka/key-partition.ts';
import { offsetsAt } from '../../libs/kafka/offsets-at-time.ts';
import { type ReadRange, readRanges } from '../../libs/kafka/topic-reader.ts';
import { topicsAcrossDcs } from '../../libs/kafka/topics.ts';
import { createSerde } from '../../libs/schemas/serde.ts';
import type { NotifyStatus } from '../../libs/schemas/types.generated.ts';
import { describeState, type Story, tellStories } from '../../libs/trail/story.ts';
import { CliError, contextOf, EXIT, usageError } from '../context.ts';
import { progress, withKafka } from '../kafka-session.ts';
import { pointInTime } from '../time-option.ts';

const STREAM = 'notify.status';

interface TraceOptions {
  user?: string;
  event?: string;
  notification?: string;
  since?: string;
}

type Selector =
  | { readonly by: 'user'; readonly id: string }
  | { readonly by: 'event'; readonly id: string }
  | { readonly by: 'notification'; readonly id: string };

export function traceCommand(program: Command): void {
  program
    .command('trace')
    .description('the delivery trail of a person, an event or a notification, stage by stage')
    .option('--user <id>', "a person's notifications (reads one partition per prefix)")
    .option('--event <id>', "an event's notifications, for every recipient")
    .option('--notification <id>', 'one notification')
    .option('--since <time>', 'oldest decision to read (ISO-8601 with a zone, or a duration back like 48h)')
    .action(async (options: TraceOptions, command: Command) => {
      const ctx = contextOf(command);
      const selector = selectorOf(options);
      const since = pointInTime(options.since ?? (selector.by === 'user' ? '168h' : '24h'), '--since');
      const serde = createSerde({ registryUrl: ctx.registryUrl });
      const records = await withKafka(ctx, async (kafka, admin) => {
        const present = new Set(await admin.listTopics());
        const topics = topicsAcrossDcs(ctx.knownDcs, STREAM).filter((t) => present.has(t));
        if (topics.length === 0) throw new CliError(`no ${STREAM} topic on this cluster`, EXIT.problem);
        const ranges = await rangesFor(admin, topics, selector, since);
        const total = ranges.reduce((n, r) => n + (r.to - r.from), 0);
        progress(
          `reading ${total} trail records from ${ranges.length} partition(s) since ${new Date(since).toISOString()}`,
        );
        const found: NotifyStatus[] = [];
        const decoding: Promise<void>[] = [];
        let undecodable = 0;
        await readRanges(kafka, {
          ranges,
          timeoutMs: 60_000,
          onRecord: ({ message }) => {
            if (message.value === null) return true;
            decoding.push(
              serde.decode(STREAM, message.value).then(
                (status) => {
                  if (matches(selector, status)) found.push(status);
                },
                () => {
                  undecodable += 1;
                },
              ),
            );
            return true;
          },
        });
        await Promise.all(decoding);
        if (undecodable > 0) progress(`${undecodable} trail record(s) did not decode and are left out`);
        return found;
      });
      const stories = tellStories(records);
      if (stories.length === 0) {
        progress(
          `no trail for ${selector.by} ${selector.id} since ${new Date(since).toISOString()} ` +
            '(try an earlier --since; a stage with DELIVERY_TRAIL=false writes nothing)',
        );
        process.exitCode = EXIT.problem;
      }
      if (ctx.output === 'json') process.stdout.write(`${JSON.stringify(stories.map(storyJson), null, 2)}\n`);
      else ctx.print(stories.flatMap(storyRows), COLUMNS);
    });
}

function selectorOf(options: TraceOptions): Selector {
  const given = (['user', 'event', 'notification'] as const).filter((by) => options[by] !== undefined);
  if (given.length !== 1) throw usageError('give exactly one of --user, --event or --notification');
  const by = given[0]!;
  return { by, id: options[by]! };
}

function matches(selector: Selector, status: NotifyStatus): boolean {
  switch (selector.by) {
    case 'user':
      return status.recipient_id === selector.id;
    case 'event':
      return status.event_id === selector.id;
    case 'notification':
      return status.notification_id === selector.id;
  }
}

async function rangesFor(
  admin: Admin,
  topics: readonly string[],
  selector: Selector,
  since: number,
): Promise<ReadRange[]> {
  const starts = await offsetsAt(admin, topics, since);
  const ranges: ReadRange[] = [];
  for (const topic of topics) {
    const bounds = await admin.fetchTopicOffsets(topic);
    const only = selector.by === 'user' ? partitionForKey(selector.id, bounds.length) : undefined;
    for (const b of bounds) {
      if (only !== undefined && b.partition !== only) continue;
      const from = Math.max(Number(b.low), starts.get(`${topic}:${b.partition}`) ?? Number(b.high));
      ranges.push({ topic, partition: b.partition, from, to: Number(b.high) });
    }
  }
  return ranges;
}

const COLUMNS = [
  'notification',
  'recipient',
  'channel',
  'at',
  'dc',
  'stage',
  'outcome',
  'reason',
  'detail',
  'state',
] as const;

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** A row per step; the story's state on its last row. */
function storyRows(story: Story) {
  return story.steps.map((step, i) => ({
    notification: story.notificationId ?? `(event ${story.eventId})`,
    recipient: story.recipientId,
    channel: story.channel ?? '',
    at: iso(step.at),
    dc: step.dc,
    stage: step.stage,
    outcome: step.outcome,
    reason: step.reason ?? '',
    detail: [step.ref, step.detail, step.dueAt === null ? null : `due ${iso(step.dueAt)}`]
      .filter((part) => part !== null)
      .join('; '),
    state: i === story.steps.length - 1 ? describeState(story.state) : '',
  }));
}

function storyJson(story: Story) {
  return {
    notification_id: story.notificationId,
    event_id: story.eventId,
    recipient_id: story.recipientId,
    channel: story.channel,
    state: { ...story.state, summary: describeState(story.state) },
    steps: story.steps.map((s) => ({ ...s, at: iso(s.at), dueAt: iso(s.dueAt) })),
  };
}
