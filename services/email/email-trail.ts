/**
 * What the email service tells the delivery trail. The digest side: each notification sent at once,
 * bundled (the bundle key, when it goes out), queued for the person's digest (when, and the digest's
 * local hour and zone, so `tidings trace` says "the 08:00 daily digest, Europe/Berlin"), or dropped
 * because it was read on the web. The sender: for every notification a message carries, what the
 * relay made of it. Pure: the handlers write what these return.
 */
import type { NotifyEmailSend } from '../../libs/schemas/types.generated.ts';
import type { TrailDecision } from '../../libs/trail/trail.ts';
import { type DigestFrequency, type DigestSchedule, resolveTimeZone } from './digest-schedule.ts';
import type { SendOutcome } from './send-message.ts';

const WEEKDAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

interface About {
  readonly eventId: string;
  readonly recipientId: string;
  readonly notificationId: string;
}

export type DigestChoice =
  | { readonly kind: 'sent-now'; readonly sendId: string; readonly transactional: boolean }
  | { readonly kind: 'bundled'; readonly bundleKey: string; readonly dueAt: number }
  | {
      readonly kind: 'queued';
      readonly frequency: DigestFrequency;
      readonly dueAt: number;
      readonly timezone: string;
      readonly schedule: DigestSchedule;
    }
  | { readonly kind: 'read-on-web' };

export function digestDecision(about: About, choice: DigestChoice): TrailDecision {
  const base = { ...about, channel: 'email' as const };
  switch (choice.kind) {
    case 'sent-now':
      return {
        ...base,
        outcome: 'sent_now',
        reason: choice.transactional ? 'transactional' : null,
        ref: choice.sendId,
      };
    case 'bundled':
      // The ref is the bundle, not its due time: a replay that finds it held is the same decision.
      return { ...base, outcome: 'bundled', ref: choice.bundleKey, dueAt: choice.dueAt };
    case 'queued':
      return {
        ...base,
        outcome: 'queued',
        reason: `${choice.frequency}-digest`,
        dueAt: choice.dueAt,
        detail: digestName(choice.frequency, choice.timezone, choice.schedule),
      };
    case 'read-on-web':
      return { ...base, outcome: 'dropped', reason: 'read-on-web' };
  }
}

/** "the 08:00 daily digest, Europe/Berlin": the person's slot, not the jittered minute it goes at. */
export function digestName(frequency: DigestFrequency, timezone: string, schedule: DigestSchedule): string {
  const hour = `${String(schedule.hour).padStart(2, '0')}:00`;
  const when = frequency === 'weekly' ? `${WEEKDAYS[schedule.weekday]} ${hour}` : hour;
  return `the ${when} ${frequency} digest, ${resolveTimeZone(timezone)}`;
}

/**
 * The sender's decisions for one message, one per notification it carries; none for a duplicate
 * (the first attempt told it).
 */
export function senderDecisions(
  message: Pick<NotifyEmailSend, 'send_id' | 'notification_ids' | 'event_ids' | 'recipient_id'>,
  outcome: SendOutcome,
): TrailDecision[] {
  const what = senderOutcome(outcome);
  if (what === null) return [];
  return message.notification_ids.map((notificationId) => ({
    // A record written before event ids travelled with the message names no event.
    eventId: message.event_ids[notificationId] ?? '',
    recipientId: message.recipient_id,
    notificationId,
    channel: 'email' as const,
    ref: message.send_id,
    ...what,
  }));
}

type Told = Pick<TrailDecision, 'outcome' | 'reason' | 'detail' | 'dueAt'>;

function senderOutcome(outcome: SendOutcome): Told | null {
  switch (outcome.kind) {
    case 'sent':
      return { outcome: outcome.resent ? 'resent' : 'accepted', detail: outcome.response };
    case 'duplicate':
      return null;
    case 'suppressed':
      return { outcome: 'suppressed', reason: 'address-suppressed' };
    case 'ambiguous':
      return outcome.retry
        ? { outcome: 'deferred', reason: 'smtp-session-broke', detail: outcome.detail }
        : // The relay may have it; its category chose never to send a second copy.
          { outcome: 'dropped', reason: 'outcome-unknown', detail: outcome.detail };
    case 'no-budget':
      return { outcome: 'deferred', reason: 'send-budget', dueAt: outcome.retryAt };
    case 'unsendable':
      return { outcome: 'dead_lettered', reason: 'unsendable', detail: outcome.detail };
    case 'failed':
      switch (outcome.failure.kind) {
        case 'recipient':
          return { outcome: 'bounced', reason: 'relay-refused', detail: outcome.failure.detail };
        case 'rejected':
          return { outcome: 'dead_lettered', reason: 'smtp-rejected', detail: outcome.failure.detail };
        case 'operator':
          return {
            outcome: 'deferred',
            reason: 'smtp-misconfigured',
            detail: `${outcome.failure.problem}: ${outcome.failure.detail}`,
          };
        case 'transient':
          return {
            outcome: 'deferred',
            reason: outcome.unreachable ? 'smtp-unreachable' : 'smtp-transient',
            detail: outcome.failure.detail,
          };
      }
  }
}
