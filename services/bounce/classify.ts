/**
 * From what a report says to what Tidings does about each address.
 *
 * Status class 5 is permanent (hard) and 4 transient (soft), RFC 3463, with exceptions where the
 * failure is about the message or our reputation rather than the address; those are soft, so they
 * suppress only if they keep happening:
 *   x.2.2 mailbox full, x.2.3 / x.3.4 message too big: the mailbox exists and may recover;
 *   x.6.x content and x.7.x policy (spam blocks, IP reputation, DMARC): blocks of us, not of the address.
 * Without an enhanced code the SMTP reply code decides (552, exceeded storage, counts as soft). A
 * failure carrying no code at all is soft: nothing says it is permanent.
 * Delayed, delivered, relayed and expanded recipients are not bounces. Feedback reports are
 * complaints when their type is abuse or fraud; virus, not-spam, auth-failure and other reports are
 * not a person asking to stop mail.
 */
import type { BounceKind } from '../../libs/schemas/types.generated.ts';
import type {
  BounceFinding,
  BounceReport,
  DsnRecipient,
  IgnoredRecipient,
  MailReport,
} from './bounce-report.ts';

const COMPLAINT_TYPES = new Set(['abuse', 'fraud']);

/**
 * Whether feedback of this type is a person asking not to get the mail. null (a provider that says
 * "complaint" without an ARF type, as SES often does) counts as a complaint.
 */
export const isComplaint = (feedbackType: string | null): boolean =>
  feedbackType === null || COMPLAINT_TYPES.has(feedbackType.toLowerCase());
const SOFT_PERMANENT = [/^5\.2\.[23]$/, /^5\.3\.4$/, /^5\.6\.\d+$/, /^5\.7\.\d+$/];
const ENHANCED = /\b([245]\.\d{1,3}\.\d{1,3})\b/;

/** hard / soft for a failure, from its enhanced status and SMTP code; null for a success code. */
export function failureKind(status: string | null, smtpCode: number | null): 'hard' | 'soft' | null {
  if (status) {
    if (status.startsWith('2.')) return null;
    if (status.startsWith('4.')) return 'soft';
    return SOFT_PERMANENT.some((p) => p.test(status)) ? 'soft' : 'hard';
  }
  if (smtpCode === null) return 'soft';
  if (smtpCode < 400) return null;
  return smtpCode >= 500 && smtpCode !== 552 ? 'hard' : 'soft';
}

/**
 * The enhanced status to judge a recipient by: the Status field, unless it is the generic x.0.0 and
 * the diagnostic names a specific code of the same class (servers often report 5.0.0 with
 * "550 5.1.1 user unknown" in the diagnostic).
 */
export function effectiveStatus(recipient: Pick<DsnRecipient, 'status' | 'diagnostic'>): string | null {
  const fromDiagnostic = ENHANCED.exec(recipient.diagnostic ?? '')?.[1] ?? null;
  const { status } = recipient;
  if (!status) return fromDiagnostic;
  if (/^\d\.0\.0$/.test(status) && fromDiagnostic?.[0] === status[0]) return fromDiagnostic;
  return status;
}

export function classifyReport(report: MailReport): BounceReport {
  const findings: BounceFinding[] = [];
  const ignored: IgnoredRecipient[] = [];
  if (report.type === 'auto-reply') {
    return {
      source: 'smtp_dsn',
      findings,
      ignored: [{ address: null, why: 'auto-reply' }],
      original: report.original,
    };
  }
  if (report.type === 'feedback') {
    const complaint = isComplaint(report.feedbackType);
    for (const address of report.recipients) {
      if (complaint) {
        findings.push({
          address,
          originalRecipient: null,
          kind: 'complaint',
          status: null,
          smtpCode: null,
          diagnostic: report.feedbackType,
        });
      } else {
        ignored.push({ address, why: `feedback-type ${report.feedbackType}` });
      }
    }
    if (report.recipients.length === 0)
      ignored.push({ address: null, why: 'feedback report names no recipient' });
    return { source: 'arf', findings, ignored, original: report.original };
  }
  for (const r of report.recipients) {
    const verdict = recipientVerdict(r);
    if (typeof verdict === 'string') ignored.push({ address: r.address, why: verdict });
    else findings.push(verdict);
  }
  return { source: 'smtp_dsn', findings, ignored, original: report.original };
}

function recipientVerdict(r: DsnRecipient): BounceFinding | string {
  if (r.action !== null && r.action !== 'failed') return r.action;
  if (!r.address) return 'no address';
  const status = effectiveStatus(r);
  const kind: BounceKind | null = failureKind(status, r.smtpCode);
  if (kind === null) return `success status ${status ?? r.smtpCode}`;
  const originalRecipient =
    r.originalRecipient && r.originalRecipient.toLowerCase() !== r.address.toLowerCase()
      ? r.originalRecipient
      : null;
  return {
    address: r.address,
    originalRecipient,
    kind,
    status,
    smtpCode: r.smtpCode,
    diagnostic: r.diagnostic,
  };
}
