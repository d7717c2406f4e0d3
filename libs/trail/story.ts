/**
 * Turns trail records (notify.status, from every stage and both datacenter prefixes) into the story
 * of each notification: its decisions in time order, each decision once, and where it stands now —
 * delivered, stopped and why, or still pending and until when. A replay leaves the story as it was:
 * the router's "duplicate-event" skip is only told when the trail holds no earlier routing of the
 * notification (it was routed before its trail records expired). Pure: `tidings trace` reads the
 * records, this decides what they say.
 */
import type { Channel, NotifyStatus, StatusOutcome } from '../schemas/types.generated.ts';

export interface StoryStep {
  readonly at: number;
  readonly stage: NotifyStatus['stage'];
  readonly outcome: StatusOutcome;
  readonly reason: string | null;
  readonly ref: string | null;
  readonly detail: string | null;
  readonly dueAt: number | null;
  /** The datacenter whose stage decided. */
  readonly dc: string;
}

export interface Story {
  readonly eventId: string;
  readonly recipientId: string;
  readonly notificationId: string | null;
  readonly channel: Channel | null;
  readonly steps: readonly StoryStep[];
  /** Where the notification stands after its last step. */
  readonly state: StoryState;
}

export type StoryState =
  | { readonly kind: 'delivered'; readonly how: StatusOutcome }
  | { readonly kind: 'stopped'; readonly how: StatusOutcome; readonly reason: string | null }
  | {
      readonly kind: 'pending';
      readonly how: StatusOutcome;
      readonly dueAt: number | null;
      /** What it waits for, e.g. "the 08:00 daily digest, Europe/Berlin". */
      readonly detail: string | null;
    }
  | { readonly kind: 'in-flight'; readonly how: StatusOutcome };

/** Reached the person: the relay took the mail, FCM took the push, the inbox holds it, they read it. */
const DELIVERED: ReadonlySet<StatusOutcome> = new Set(['accepted', 'resent', 'pushed', 'stored', 'read']);
/** Will not reach the person (on this channel) unless someone acts. */
const STOPPED: ReadonlySet<StatusOutcome> = new Set([
  'skipped',
  'dead_lettered',
  'dropped',
  'suppressed',
  'bounced',
  'complained',
  'token_dead',
]);
/** Waiting for a time or an operator: a bundle, a digest, a retry, a hold. */
const PENDING: ReadonlySet<StatusOutcome> = new Set(['held', 'bundled', 'queued', 'deferred']);

/** Stages in pipeline order: breaks ties between steps taken in the same millisecond. */
const STAGE_ORDER = ['router', 'digest', 'sender', 'push', 'inbox', 'bounce', 'unknown'] as const;

export function tellStories(records: readonly NotifyStatus[]): Story[] {
  const byNotification = new Map<string, Map<string, NotifyStatus>>();
  for (const record of records) {
    const subject = record.notification_id ?? `${record.event_id}/${record.recipient_id}`;
    const decisions = byNotification.get(subject) ?? new Map<string, NotifyStatus>();
    byNotification.set(subject, decisions);
    // The same decision taken again (a replay, the other prefix's copy) has the same id: keep the first.
    const seen = decisions.get(record.meta.id);
    if (!seen || record.at < seen.at) decisions.set(record.meta.id, record);
  }
  const stories = [...byNotification.values()].map((decisions) => storyOf([...decisions.values()]));
  return stories.sort(
    (a, b) =>
      a.steps[0]!.at - b.steps[0]!.at || String(a.notificationId).localeCompare(String(b.notificationId)),
  );
}

function storyOf(records: NotifyStatus[]): Story {
  records.sort((a, b) => a.at - b.at || stageRank(a.stage) - stageRank(b.stage));
  const routed = records.some((r) => r.stage === 'router' && !isReplaySkip(r));
  const told = routed ? records.filter((r) => !isReplaySkip(r)) : records;
  const first = told[0]!;
  const steps = told.map(
    (r): StoryStep => ({
      at: r.at,
      stage: r.stage,
      outcome: r.outcome,
      reason: r.reason,
      ref: r.ref,
      detail: r.detail,
      dueAt: r.due_at,
      dc: r.meta.dc,
    }),
  );
  return {
    eventId: first.event_id,
    recipientId: first.recipient_id,
    notificationId: first.notification_id,
    channel: first.channel,
    steps,
    state: stateAfter(steps),
  };
}

function stageRank(stage: NotifyStatus['stage']): number {
  return STAGE_ORDER.indexOf(stage);
}

function isReplaySkip(record: NotifyStatus): boolean {
  return record.stage === 'router' && record.outcome === 'skipped' && record.reason === 'duplicate-event';
}

/** The last step decides. */
function stateAfter(steps: readonly StoryStep[]): StoryState {
  const last = steps.at(-1)!;
  if (DELIVERED.has(last.outcome)) return { kind: 'delivered', how: last.outcome };
  if (STOPPED.has(last.outcome)) return { kind: 'stopped', how: last.outcome, reason: last.reason };
  if (PENDING.has(last.outcome))
    return { kind: 'pending', how: last.outcome, dueAt: last.dueAt, detail: last.detail };
  return { kind: 'in-flight', how: last.outcome };
}

/** One line for a person: "delivered (accepted)", "not delivered: skipped, channel-off", "pending: queued until …". */
export function describeState(state: StoryState): string {
  switch (state.kind) {
    case 'delivered':
      return `delivered (${state.how})`;
    case 'stopped':
      return `not delivered: ${state.how}${state.reason ? `, ${state.reason}` : ''}`;
    case 'pending':
      return `pending: ${state.how}${state.dueAt === null ? '' : ` until ${new Date(state.dueAt).toISOString()}`}${
        state.detail ? ` (${state.detail})` : ''
      }`;
    case 'in-flight':
      return `in flight: ${state.how}, the next stage has not reported yet`;
  }
}
