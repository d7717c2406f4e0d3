/**
 * The notify.email-send record for a rendered mail. Its send_id is a hash of the sorted
 * notification ids it carries, so rebuilding the same mail after a redelivery, a replay or a
 * crash yields the same send_id, and the sender's sent-id ledger refuses the second copy. The kind
 * is deliberately left out of the hash: the same notifications must not go out twice even if a
 * replay decides differently whether they form an instant mail or a bundle.
 *
 * Message-ID derives from send_id too, so a resent copy could be recognised by any mailbox as the
 * same message.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { EmailDelivery, EmailSendKind, NotifyEmailSend } from '../../libs/schemas/types.generated.ts';
import { headerSafe, type RenderedMail } from './render.ts';

export interface EmailSendInput {
  readonly kind: EmailSendKind;
  readonly delivery: EmailDelivery;
  readonly notificationIds: readonly string[];
  /** The upstream event of each notification id, carried for the sender's delivery trail. */
  readonly eventIds: Readonly<Record<string, string>>;
  readonly recipientId: string;
  readonly to: string;
  readonly from: string;
  /** Category of the (first) notification. */
  readonly category: string;
  readonly rendered: RenderedMail;
  /** Domain of the From address, e.g. mail.example.org: Message-IDs are minted under it. */
  readonly sendingDomain: string;
  /** listUnsubscribeHeaders(...) for mail a person can unsubscribe from; null for transactional mail. */
  readonly unsubscribeHeaders: Readonly<Record<string, string>> | null;
  readonly origin: { readonly dc: string; readonly producer: string };
  /** meta.dt: when the mail was due (event time of an instant mail, due time of a bundle or digest). */
  readonly dt: number;
  readonly requestId: string | null;
}

const DOMAIN =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** 32 lower-case hex characters of SHA-256 over the sorted, de-duplicated notification ids. */
export function sendIdOf(notificationIds: readonly string[]): string {
  if (notificationIds.length === 0) throw new Error('a mail carries at least one notification');
  const ids = [...new Set(notificationIds)].sort();
  return createHash('sha256').update(JSON.stringify(ids)).digest('hex').slice(0, 32);
}

/** RFC 5322 msg-id: `<send id@sending domain>`. */
export function messageIdOf(sendId: string, sendingDomain: string): string {
  if (!DOMAIN.test(sendingDomain))
    throw new Error(`sending domain must be a host name, got ${JSON.stringify(sendingDomain)}`);
  return `<${sendId}@${sendingDomain.toLowerCase()}>`;
}

export function buildEmailSend(input: EmailSendInput): NotifyEmailSend {
  const sendId = sendIdOf(input.notificationIds);
  const headers: Record<string, string> = {
    'Message-ID': messageIdOf(sendId, input.sendingDomain),
    // RFC 3834: keeps vacation responders and auto-replies from answering a notification.
    'Auto-Submitted': 'auto-generated',
    'X-Tidings-Category': input.category,
    'X-Tidings-Kind': input.kind,
    'X-Tidings-Send-Id': sendId,
    ...input.unsubscribeHeaders,
  };
  for (const [name, value] of Object.entries(headers)) headers[name] = headerSafe(value);
  return {
    meta: {
      id: randomUUID(),
      dt: input.dt,
      stream: 'notify.email-send',
      dc: input.origin.dc,
      producer: input.origin.producer,
      request_id: input.requestId,
    },
    send_id: sendId,
    notification_ids: [...new Set(input.notificationIds)].sort(),
    event_ids: { ...input.eventIds },
    recipient_id: input.recipientId,
    to: headerSafe(input.to),
    from: headerSafe(input.from),
    subject: headerSafe(input.rendered.subject),
    text: input.rendered.text,
    html: input.rendered.html,
    headers,
    category: input.category,
    locale: input.rendered.locale,
    kind: input.kind,
    delivery: input.delivery,
  };
}
