/**
 * The delivery trail: every stage writes one notify.status record per decision it takes about a
 * notification, through the handler context it already has, so the record goes out with the
 * stage's other outputs and is durable before the offset commits. It never holds delivery back: a
 * trail record is one more output of the same handler, not a step of its own.
 *
 * A decision has a deterministic meta.id (notification or event+recipient, stage, outcome, reason,
 * ref): the same decision taken again (a replay, a redelivery, a failover) carries the same id, and
 * readers (`tidings trace`, receipts) show it once. That is what makes the trail idempotent without
 * any state of its own.
 */
import { derivedUuid } from '../ids/derived-uuid.ts';
import type { HandlerContext } from '../kafka/consumer-runtime.ts';
import type { Channel, NotifyStatusInput, StatusOutcome, StatusStage } from '../schemas/types.generated.ts';

export interface TrailDecision {
  readonly eventId: string;
  readonly recipientId: string;
  /** null for a decision taken before any channel. */
  readonly notificationId: string | null;
  readonly channel: Channel | null;
  readonly outcome: StatusOutcome;
  readonly reason?: string | null;
  readonly ref?: string | null;
  readonly detail?: string | null;
  readonly dueAt?: number | null;
}

export interface Trail {
  /** False when DELIVERY_TRAIL is off: callers may skip building decisions at all. */
  readonly enabled: boolean;
  /**
   * `evenIfFailed`: the decision stands even if the handler then throws (a send deferred for retry):
   * it goes out with the record's retry (see EmitOptions).
   */
  write(
    context: Pick<HandlerContext<unknown>, 'emit' | 'derivedMeta'>,
    decision: TrailDecision,
    options?: { evenIfFailed?: boolean },
  ): void;
}

export interface TrailOptions {
  stage: StatusStage;
  enabled: boolean;
  now?: () => number;
}

export function createTrail({ stage, enabled, now = Date.now }: TrailOptions): Trail {
  return {
    enabled,
    write(context, d, { evenIfFailed = false } = {}) {
      if (!enabled) return;
      const reason = d.reason ?? null;
      const ref = d.ref ?? null;
      const record: NotifyStatusInput = {
        meta: context.derivedMeta('notify.status', decisionId(stage, d, reason, ref)),
        event_id: d.eventId,
        notification_id: d.notificationId,
        recipient_id: d.recipientId,
        channel: d.channel,
        stage,
        outcome: d.outcome,
        reason,
        ref,
        detail: d.detail ?? null,
        due_at: d.dueAt ?? null,
        at: now(),
      };
      context.emit('notify.status', record, { key: d.recipientId, evenIfFailed });
    },
  };
}

/** Of what was decided, not of when: the same decision, the same id. */
export function decisionId(
  stage: StatusStage,
  d: Pick<TrailDecision, 'eventId' | 'recipientId' | 'notificationId' | 'outcome'>,
  reason: string | null,
  ref: string | null,
): string {
  const subject = d.notificationId ?? `${d.eventId}/${d.recipientId}`;
  return derivedUuid(['status', subject, stage, d.outcome, reason, ref]);
}
