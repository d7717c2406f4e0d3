/**
 * One notify.email-send record from the notifications it carries: the unsubscribe token signed
 * for the person and the category (every category for a digest, which spans several), the
 * templates rendered, the headers made single-line. Transactional mail gets no unsubscribe link.
 */
import type { EmailDelivery, EmailSendKind, NotifyEmailSend } from '../../libs/schemas/types.generated.ts';
import { buildEmailSend } from './message.ts';
import { type MailItem, renderMail, type TemplateSet } from './render.ts';
import {
  listUnsubscribeHeaders,
  signUnsubscribeToken,
  type UnsubscribeKeyRing,
} from './unsubscribe-token.ts';

export interface ComposeSettings {
  readonly templates: TemplateSet;
  readonly keyRing: UnsubscribeKeyRing;
  readonly unsubscribeUrl: string;
  readonly unsubscribeMailto: string | undefined;
  readonly unsubscribeTtlMs: number;
  readonly from: string;
  readonly sendingDomain: string;
  readonly siteName: string;
  readonly origin: { readonly dc: string; readonly producer: string };
}

export interface MailToCompose {
  readonly kind: EmailSendKind;
  /** The category's choice from notify.email; what the sender does when a crash leaves it unconfirmed. */
  readonly delivery: EmailDelivery;
  readonly recipientId: string;
  readonly email: string;
  readonly locale: string;
  readonly timezone: string;
  /** In display order; at least one. */
  readonly items: readonly MailItem[];
  /** meta.dt of the record: event time of an instant mail, due time of a bundle or digest. */
  readonly dt: number;
  readonly requestId: string | null;
  /** Signing time of the unsubscribe token. */
  readonly now: number;
}

export function composeMail(settings: ComposeSettings, mail: MailToCompose): NotifyEmailSend {
  const first = mail.items[0];
  if (!first) throw new Error('a mail carries at least one notification');
  const category = first.notification.category;
  const digest = mail.kind === 'daily' || mail.kind === 'weekly';
  let unsubscribeHeaders: Record<string, string> | null = null;
  let pageUrl: string | null = null;
  if (mail.kind !== 'transactional') {
    const token = signUnsubscribeToken(settings.keyRing, {
      userId: mail.recipientId,
      category: digest ? null : category,
      channel: 'email',
      expiresAt: mail.now + settings.unsubscribeTtlMs,
    });
    unsubscribeHeaders = listUnsubscribeHeaders({
      endpoint: settings.unsubscribeUrl,
      token,
      ...(settings.unsubscribeMailto === undefined ? {} : { mailto: settings.unsubscribeMailto }),
    });
    const page = new URL(settings.unsubscribeUrl);
    page.searchParams.set('token', token);
    pageUrl = page.href;
  }
  const rendered = renderMail(settings.templates, {
    kind: mail.kind,
    items: mail.items,
    locale: mail.locale,
    timezone: mail.timezone,
    siteName: settings.siteName,
    unsubscribeUrl: pageUrl,
  });
  return buildEmailSend({
    kind: mail.kind,
    delivery: mail.delivery,
    notificationIds: mail.items.map((i) => i.notification.notification_id),
    recipientId: mail.recipientId,
    to: mail.email,
    from: settings.from,
    category,
    rendered,
    sendingDomain: settings.sendingDomain,
    unsubscribeHeaders,
    origin: settings.origin,
    dt: mail.dt,
    requestId: mail.requestId,
  });
}
