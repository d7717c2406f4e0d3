/**
 * What the router tells the delivery trail about one event: a decision per recipient and channel
 * (emitted, folded, or skipped and why), and for an event stopped as a whole (a duplicate, expired,
 * held back as chatty) that reason for each of its recipients and channels, so `tidings trace
 * --user` answers "why didn't they get it" for everyone the event named.
 */

import type { Channel, NotifyEvent } from '../../libs/schemas/types.generated.ts';
import type { TrailDecision } from '../../libs/trail/trail.ts';
import type { CategoryRegistry } from './categories.ts';
import { notificationId } from './notification-id.ts';
import type { EventRouting } from './route.ts';

export function trailDecisions(
  event: NotifyEvent,
  routing: EventRouting,
  registry: CategoryRegistry,
  holdTopic: string,
): TrailDecision[] {
  const eventId = event.event_id;
  switch (routing.outcome) {
    case 'routed':
      return routing.decisions.map((d) => ({
        eventId,
        recipientId: d.recipientId,
        // An emitted decision's record carries its id already: one SHA-256 less per decision.
        notificationId:
          d.outcome === 'skipped'
            ? notificationId(eventId, d.recipientId, d.channel)
            : d.record.notification.notification_id,
        channel: d.channel,
        outcome: d.outcome,
        reason: d.outcome === 'skipped' ? d.reason : null,
      }));
    case 'skipped':
      return perRecipientChannel(event, registry, { outcome: 'skipped', reason: routing.reason });
    case 'held':
      return perRecipientChannel(event, registry, {
        outcome: 'held',
        reason: routing.reason,
        ref: holdTopic,
      });
    case 'dead-letter':
      // The record goes to the DLQ with its reason; nothing the handler emits survives a rejection.
      return [];
  }
}

function perRecipientChannel(
  event: NotifyEvent,
  registry: CategoryRegistry,
  what: Pick<TrailDecision, 'outcome' | 'reason' | 'ref'>,
): TrailDecision[] {
  const channels: Channel[] = [...(registry.get(event.category)?.channels.keys() ?? [])];
  return [...new Set(event.recipients)].flatMap((recipientId) =>
    channels.map((channel) => ({
      eventId: event.event_id,
      recipientId,
      notificationId: notificationId(event.event_id, recipientId, channel),
      channel,
      ...what,
    })),
  );
}
