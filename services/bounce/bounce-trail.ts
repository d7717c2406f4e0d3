/**
 * What the bounce stage tells the delivery trail about one notify.bounce record: on every
 * notification the reported message carried, that it bounced or drew a complaint (ref: the report,
 * the notify.bounce record's id) and, when the report suppressed the address, that it did, until
 * when. A redelivered report tells the same decisions again under the same ids.
 */
import type { NotifyBounce } from '../../libs/schemas/types.generated.ts';
import type { TrailDecision } from '../../libs/trail/trail.ts';
import type { SentNotification } from './sent-mail.ts';
import type { SuppressionAction } from './suppression-policy.ts';

export function bounceDecisions(
  bounce: NotifyBounce,
  actions: readonly SuppressionAction[],
  sent: readonly SentNotification[],
): TrailDecision[] {
  const report = bounce.meta.id;
  const detail =
    [bounce.status, bounce.smtp_code, bounce.diagnostic].filter((p) => p !== null).join(' ') || null;
  const suppression = actions.find((a) => a.type === 'suppress')?.suppression;
  return sent.flatMap((n): TrailDecision[] => {
    const about = {
      eventId: n.eventId,
      recipientId: n.recipientId,
      notificationId: n.notificationId,
      channel: 'email',
      ref: report,
    } as const;
    const reported: TrailDecision =
      bounce.kind === 'complaint'
        ? { ...about, outcome: 'complained', reason: bounce.source.replaceAll('_', '-'), detail }
        : { ...about, outcome: 'bounced', reason: `${bounce.kind}-bounce`, detail };
    if (!suppression) return [reported];
    const until =
      suppression.until === null ? 'until lifted' : `until ${new Date(suppression.until).toISOString()}`;
    return [
      reported,
      {
        ...about,
        outcome: 'suppressed',
        reason: suppression.reason.replaceAll('_', '-'),
        detail: `the address is not mailed ${until}`,
      },
    ];
  });
}
