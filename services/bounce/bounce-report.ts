/**
 * What a bounce or complaint says, in two steps: the MailReport is what the message literally
 * states (report-parser.ts), the BounceReport is what Tidings concludes from it (classify.ts, and
 * webhook.ts for provider JSON). Both SMTP and webhook input end as a BounceReport.
 */
import type { BounceKind, BounceSource } from '../../libs/schemas/types.generated.ts';

/** What the report tells about the message that bounced, to find which send it was. */
export interface OriginalMessage {
  /** Address from the Return-Path (the VERP address), without angle brackets. */
  readonly returnPath: string | null;
  readonly messageId: string | null;
  /** Address of the From header: its domain is the sending domain, for per-domain reputation. */
  readonly from: string | null;
  /** Address(es) of the To header, when the reporter did not redact them. */
  readonly to: readonly string[];
  /** X-Tidings-* headers, by lower-cased name. */
  readonly tidingsHeaders: Readonly<Record<string, string>>;
}

/** One per-recipient block of an RFC 3464 report (or what a plain-text bounce says about one address). */
export interface DsnRecipient {
  /** The address (Final-Recipient when of type rfc822, else Original-Recipient). */
  readonly address: string | null;
  readonly originalRecipient: string | null;
  /** Lower-cased: failed, delayed, delivered, relayed, expanded. */
  readonly action: string | null;
  /** Enhanced status code (RFC 3463), e.g. 5.1.1. */
  readonly status: string | null;
  readonly smtpCode: number | null;
  readonly diagnostic: string | null;
  readonly remoteMta: string | null;
}

export type MailReport =
  | {
      readonly type: 'delivery-status';
      /** rfc3464: a multipart/report; plain-text: recognised by the wording of a non-standard bounce. */
      readonly format: 'rfc3464' | 'plain-text';
      readonly reportingMta: string | null;
      readonly recipients: readonly DsnRecipient[];
      readonly original: OriginalMessage | null;
    }
  | {
      readonly type: 'feedback';
      /** Lower-cased Feedback-Type: abuse, fraud, virus, other, not-spam, auth-failure… */
      readonly feedbackType: string;
      readonly userAgent: string | null;
      readonly sourceIp: string | null;
      /** Original-Rcpt-To fields, or else the To of the original message. */
      readonly recipients: readonly string[];
      readonly original: OriginalMessage | null;
    }
  | { readonly type: 'auto-reply'; readonly original: OriginalMessage | null };

export type ParseFailure =
  | 'unparseable'
  | 'no-delivery-status'
  | 'no-recipients'
  | 'no-feedback-report'
  | 'no-feedback-type'
  | 'unrecognized'
  /** A per-recipient field that is not what RFC 3464 allows: unknown Action, malformed Status, no address. */
  | 'invalid-field'
  | 'too-many-recipients';

export type ParseResult =
  | { readonly ok: true; readonly report: MailReport }
  | { readonly ok: false; readonly reason: ParseFailure; readonly detail: string };

/** One address Tidings must act on. */
export interface BounceFinding {
  readonly address: string;
  /**
   * The address as first given (RFC 3464 Original-Recipient), when a forward changed it: the VERP
   * token was issued for this one, and it is the address Tidings mails.
   */
  readonly originalRecipient: string | null;
  readonly kind: BounceKind;
  readonly status: string | null;
  readonly smtpCode: number | null;
  readonly diagnostic: string | null;
}

/** An address a report named but that calls for no action, and why (delayed, delivered, not-spam…). */
export interface IgnoredRecipient {
  readonly address: string | null;
  readonly why: string;
}

export interface BounceReport {
  readonly source: BounceSource;
  readonly findings: readonly BounceFinding[];
  readonly ignored: readonly IgnoredRecipient[];
  readonly original: OriginalMessage | null;
}
