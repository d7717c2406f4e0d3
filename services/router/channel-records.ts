/**
 * The records the router emits: one notification for one person on one channel, carrying the
 * event's meta.dt and request id, and the person's locale and timezone so that downstream services
 * never need the router's tables.
 */
import type {
  Channel,
  EmailFrequency,
  Meta,
  Notification,
  NotifyEmail,
  NotifyEvent,
  NotifyPush,
  NotifyWeb,
} from '../../libs/schemas/types.generated.ts';
import type { Category } from './categories.ts';
import { notificationId, recordId } from './notification-id.ts';
import type { Recipient } from './recipient.ts';

/** Where emitted records say they come from. */
export interface Origin {
  /** The router's own datacenter: the prefix of the topics it writes. */
  readonly dc: string;
  readonly producer: string;
}

export type Emission =
  | { readonly channel: 'web'; readonly record: NotifyWeb }
  | { readonly channel: 'email'; readonly record: NotifyEmail }
  | { readonly channel: 'push'; readonly record: NotifyPush };

export interface NotificationSource {
  readonly event: NotifyEvent;
  readonly category: Category;
  readonly recipient: Recipient;
  readonly bundleKey: string | null;
  readonly origin: Origin;
}

function metaFor(source: NotificationSource, channel: Channel, id: string): Meta {
  return {
    id: recordId(id),
    dt: source.event.meta.dt,
    stream: `notify.${channel}`,
    dc: source.origin.dc,
    producer: source.origin.producer,
    request_id: source.event.meta.request_id,
  };
}

function notificationFor(source: NotificationSource, id: string): Notification {
  const { event, category, recipient } = source;
  return {
    notification_id: id,
    event_id: event.event_id,
    event_type: event.type,
    category: category.name,
    recipient_id: recipient.userId,
    agent: event.agent,
    title: event.title ?? '',
    url: event.url ?? '',
    extra: event.extra,
    priority: category.priority,
    bundle_key: source.bundleKey,
    locale: recipient.locale,
    timezone: recipient.timezone,
  };
}

function envelope(source: NotificationSource, channel: Channel): { meta: Meta; notification: Notification } {
  const id = notificationId(source.event.event_id, source.recipient.userId, channel);
  return { meta: metaFor(source, channel, id), notification: notificationFor(source, id) };
}

/** `folded`: a throttle kept it from email and push; the inbox shows it folded into a summary. */
export function webEmission(source: NotificationSource, folded: boolean): Emission {
  return { channel: 'web', record: { ...envelope(source, 'web'), folded } };
}

export function emailEmission(
  source: NotificationSource,
  address: string,
  frequency: EmailFrequency,
): Emission {
  return {
    channel: 'email',
    record: {
      ...envelope(source, 'email'),
      email: address,
      email_frequency: frequency,
      transactional: source.category.transactional,
      delivery: source.category.emailDelivery,
    },
  };
}

export function pushEmission(source: NotificationSource): Emission {
  return { channel: 'push', record: envelope(source, 'push') };
}
