/**
 * One notify.email-send record from the notifications it carries: the unsubscribe token signed
 * for the person and every category the mail carries (a bundle or digest may mix several: the
 * one-click POST of its List-Unsubscribe header turns off each), one link per category in the body
 * when there are several, the templates rendered, the headers made single-line. Transactional mail
 * gets no unsubscribe link.
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
  let unsubscribeHeaders: Record<string, string> | null = null;
  let pageUrl: string | null = null;
  let perCategory: { category: string; url: string }[] = [];
  if (mail.kind !== 'transactional') {
    const categories = [...new Set(mail.items.map((i) => i.notification.category))];
    const sign = (names: readonly string[]) =>
      signUnsubscribeToken(settings.keyRing, {
        userId: mail.recipientId,
        categories: names,
        channel: 'email',
        expiresAt: mail.now + settings.unsubscribeTtlMs,
      });
    const pageFor = (token: string) => {
      const page = new URL(settings.unsubscribeUrl);
      page.searchParams.set('token', token);
      return page.href;
    };
    const token = sign(categories);
    unsubscribeHeaders = listUnsubscribeHeaders({
      endpoint: settings.unsubscribeUrl,
      token,
      ...(settings.unsubscribeMailto === undefined ? {} : { mailto: settings.unsubscribeMailto }),
    });
    pageUrl = pageFor(token);
    if (categories.length > 1)
      perCategory = categories.map((c) => ({ category: c, url: pageFor(sign([c])) }));
  }
  const rendered = renderMail(settings.templates, {
    kind: mail.kind,
    items: mail.items,
    locale: mail.locale,
    timezone: mail.timezone,
    siteName: settings.siteName,
    unsubscribeUrl: pageUrl,
    unsubscribeCategories: perCategory,
  });
  return buildEmailSend({
    kind: mail.kind,
    delivery: mail.delivery,
    notificationIds: mail.items.map((i) => i.notification.notification_id),
    eventIds: Object.fromEntries(
      mail.items.map((i) => [i.notification.notification_id, i.notification.event_id]),
    ),
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
