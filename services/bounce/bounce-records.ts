/**
 * From a classified report to notify.bounce records, one per address to act on.
 *
 * A DSN or ARF report arriving by SMTP is trusted only for the addresses its VERP token was issued
 * for: whoever can read one message we sent (its Return-Path is in the delivered mail) could
 * otherwise mail a "DSN" naming someone else's address and get it suppressed. Webhook reports are
 * authenticated as a whole by their signature and need no token.
 *
 * Nothing else in a report names anyone: its returned headers (X-Tidings-Recipient, …) are text the
 * reporter wrote, and a forged one would turn off the email of whoever it names. The person a
 * complaint acts on is found by the ledger from the verified address (people-store.ts).
 */
import { randomUUID } from 'node:crypto';
import { addressHash, issuedFor, type VerpFields, type VerpKey } from '../../libs/mail/verp.ts';
import type { NotifyBounceInput } from '../../libs/schemas/types.generated.ts';
import type { BounceFinding, BounceReport, OriginalMessage } from './bounce-report.ts';

export interface RecordOrigin {
  readonly dc: string;
  readonly producer: string;
  /** ms since the epoch: when the report arrived, the records' event time. */
  readonly now: number;
}

/** The address Tidings mailed: the original recipient when a forward changed it. */
export const mailedAddress = (finding: BounceFinding): string => finding.originalRecipient ?? finding.address;

/** The domain of the original From, for per-domain reputation. */
export function sendingDomainOf(original: OriginalMessage | null): string | null {
  const from = original?.from;
  const at = from?.lastIndexOf('@') ?? -1;
  return from && at > 0 ? from.slice(at + 1).toLowerCase() : null;
}

export function bounceRecord(
  report: BounceReport,
  finding: BounceFinding,
  sendId: string | null,
  origin: RecordOrigin,
): NotifyBounceInput {
  const address = mailedAddress(finding);
  const headers = report.original?.tidingsHeaders ?? {};
  return {
    meta: {
      id: randomUUID(),
      dt: origin.now,
      stream: 'notify.bounce',
      dc: origin.dc,
      producer: origin.producer,
      request_id: null,
    },
    address_hash: addressHash(address),
    address,
    recipient_id: null,
    notification_id: null,
    // A webhook is signed as a whole, so its copy of our own X-Tidings-Send-Id is ours.
    send_id: sendId ?? (report.source === 'webhook' ? (headers['x-tidings-send-id'] ?? null) : null),
    kind: finding.kind,
    status: finding.status,
    smtp_code: finding.smtpCode,
    diagnostic: finding.diagnostic,
    source: report.source,
    sending_domain: sendingDomainOf(report.original),
  };
}

export interface Attributed {
  readonly records: readonly NotifyBounceInput[];
  /** Findings about addresses none of the tokens was issued for: not acted on. */
  readonly unattributed: readonly BounceFinding[];
}

/** Records for the findings some verified token was issued for, with that token's send id. */
export function attributeFindings(
  report: BounceReport,
  tokens: readonly VerpFields[],
  keys: readonly VerpKey[],
  origin: RecordOrigin,
): Attributed {
  const records: NotifyBounceInput[] = [];
  const unattributed: BounceFinding[] = [];
  for (const finding of report.findings) {
    const candidates = [finding.originalRecipient, finding.address].filter((a) => a !== null);
    const token = tokens.find((t) => candidates.some((a) => issuedFor(t, a, keys)));
    if (!token) {
      unattributed.push(finding);
      continue;
    }
    const mailed = candidates.find((a) => issuedFor(token, a, keys)) ?? finding.address;
    records.push(
      bounceRecord(report, { ...finding, originalRecipient: null, address: mailed }, token.messageId, origin),
    );
  }
  return { records, unattributed };
}
