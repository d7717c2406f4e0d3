/**
 * What push tells the delivery trail about one notify.push record, from what its window did for the
 * person (deliver-window.ts). A push is one nudge per person per window, so every notification of the
 * person in the window tells the same devices and calls; a retry is carried by one of them (the
 * carrier), and the others say which one carries them.
 *
 * Nothing is told when every device already had the push (a redelivery or a replay): the first
 * "pushed" stands, and the trail stays as it was.
 */

import type { Notification } from '../../libs/schemas/types.generated.ts';
import type { TrailDecision } from '../../libs/trail/trail.ts';
import type { WindowOutcome } from './deliver-window.ts';

/** Enough of a token hash to tell a person's devices apart in a trace, not enough to matter. */
const DEVICE_REF_CHARS = 12;

export function pushDecisions(
  notification: Notification,
  outcome: WindowOutcome | 'kill-switch',
  now: number,
): TrailDecision[] {
  const about = {
    eventId: notification.event_id,
    recipientId: notification.recipient_id,
    notificationId: notification.notification_id,
    channel: 'push',
  } as const;
  if (outcome === 'kill-switch') return [{ ...about, outcome: 'dropped', reason: 'kill-switch' }];

  const { devices } = outcome;
  const decisions: TrailDecision[] = devices.dead.map((dead) => ({
    ...about,
    outcome: 'token_dead',
    reason: dead.code,
    ref: dead.tokenHash.slice(0, DEVICE_REF_CHARS),
    detail: 'the provider says this device is gone; it is forgotten',
  }));
  if (devices.pushed > 0) {
    decisions.push({
      ...about,
      outcome: 'pushed',
      ref: devices.calls.join(' '),
      detail: `${devices.pushed} device${devices.pushed === 1 ? '' : 's'}`,
    });
  }
  if (outcome.kind === 'delivered') {
    const nothingToPush = devices.pushed === 0 && devices.already === 0 && devices.dead.length === 0;
    if (nothingToPush) decisions.push({ ...about, outcome: 'dropped', reason: 'no-devices' });
    return decisions;
  }
  if (outcome.kind === 'rejected') return decisions;
  if (outcome.carrier !== notification.notification_id) {
    decisions.push({
      ...about,
      outcome: 'deferred',
      reason: 'carried-by',
      ref: outcome.carrier,
      detail: `the retry of notification ${outcome.carrier} pushes this person for both`,
    });
  } else if (outcome.retryAfterMs === null) {
    decisions.push({ ...about, outcome: 'deferred', reason: 'provider-unavailable', detail: outcome.code });
  } else {
    decisions.push({
      ...about,
      outcome: 'held',
      reason: 'retry-after',
      detail: outcome.code,
      dueAt: now + outcome.retryAfterMs,
    });
  }
  return decisions;
}
