/**
 * A raw message that arrived at the VERP domain, read into a MailReport: an RFC 3464 delivery
 * status report, an RFC 5965 feedback report, a plain-text bounce recognised by its wording, or an
 * auto-reply (which is not a bounce). Anything else is a parse failure with a reason, for the DLQ,
 * and so is a report whose per-recipient fields are not what RFC 3464 allows (an unknown Action, a
 * malformed Status, no address) or that names more recipients than `maxRecipients`: guessing what
 * such a report means would let its writer choose, and counting it as ignored would hide it.
 */
import {
  type AddressObject,
  type Attachment,
  type ParsedMail,
  type SimpleParserOptions,
  simpleParser,
} from 'mailparser';
import type {
  DsnRecipient,
  MailReport,
  OriginalMessage,
  ParseFailure,
  ParseResult,
} from './bounce-report.ts';
import {
  addressIn,
  firstField,
  type HeaderFields,
  parseFieldGroups,
  parseHeaderSection,
} from './header-fields.ts';
import { parsePlainBounce } from './plain-bounce.ts';

const DELIVERY_STATUS = ['message/delivery-status', 'message/global-delivery-status'];
const FEEDBACK_REPORT = 'message/feedback-report';
const RETURNED = ['message/rfc822', 'message/global', 'text/rfc822-headers', 'message/rfc822-headers'];

/**
 * keepDeliveryStatus: otherwise mailparser folds the delivery-status part into the text body.
 * ignoreEmbedded (passed through to mailsplit, not in the typings): otherwise a returned message
 * marked inline, as AOL and Microsoft send it, is merged into the body and its headers are lost.
 */
const PARSER_OPTIONS: SimpleParserOptions & { ignoreEmbedded: boolean } = {
  keepDeliveryStatus: true,
  ignoreEmbedded: true,
  skipTextLinks: true,
  skipImageLinks: true,
};

/** Recipients one report may name: the sender mails one address per message, MTAs report a few. */
export const DEFAULT_MAX_RECIPIENTS = 100;

export interface ParseLimits {
  readonly maxRecipients: number;
}

const ACTIONS = new Set(['failed', 'delayed', 'delivered', 'relayed', 'expanded']);
const STATUS = /^[245]\.\d{1,3}\.\d{1,3}$/;

export async function parseReport(
  raw: Buffer | string,
  limits: ParseLimits = { maxRecipients: DEFAULT_MAX_RECIPIENTS },
): Promise<ParseResult> {
  let mail: ParsedMail;
  try {
    mail = await simpleParser(raw, PARSER_OPTIONS);
  } catch (error) {
    return failure('unparseable', error instanceof Error ? error.message : String(error));
  }
  const reportType = reportTypeOf(mail);
  if (reportType === 'delivery-status' || findPart(mail, DELIVERY_STATUS))
    return deliveryStatus(mail, limits);
  if (reportType === 'feedback-report' || findPart(mail, [FEEDBACK_REPORT])) return feedback(mail, limits);

  const plain = parsePlainBounce({
    text: mail.text ?? '',
    subject: mail.subject ?? '',
    from: mail.from?.text ?? '',
    failedRecipients: headerText(mail, 'x-failed-recipients')
      .split(',', limits.maxRecipients + 1)
      .map(addressIn)
      .filter((a) => a !== null),
  });
  if (plain) {
    if (plain.recipients.length === 0) {
      return failure('no-recipients', 'reads like a bounce but names no recipient address');
    }
    if (plain.recipients.length > limits.maxRecipients) return tooMany(limits);
    const original = plain.returnedMessage ? originalFrom(parseHeaderSection(plain.returnedMessage)) : null;
    return ok({
      type: 'delivery-status',
      format: 'plain-text',
      reportingMta: plain.reportingMta,
      recipients: plain.recipients,
      original: original ?? returnedPart(mail),
    });
  }
  if (isAutoReply(mail)) return ok({ type: 'auto-reply', original: returnedPart(mail) });
  return failure(
    'unrecognized',
    `neither a delivery status nor a feedback report (content type ${contentTypeOf(mail)?.value ?? 'none'})`,
  );
}

function deliveryStatus(mail: ParsedMail, limits: ParseLimits): ParseResult {
  const part = findPart(mail, DELIVERY_STATUS);
  if (!part)
    return failure('no-delivery-status', 'multipart/report of type delivery-status without its status part');
  // One per-message group, the recipients, and one more to tell "too many" from "just enough".
  const groups = parseFieldGroups(part.content.toString('utf8'), limits.maxRecipients + 2);
  const isRecipient = (g: HeaderFields) => g.has('final-recipient') || g.has('original-recipient');
  const perMessage = groups.find((g) => !isRecipient(g));
  const recipients = groups.filter(isRecipient).map(dsnRecipient);
  if (recipients.length === 0)
    return failure('no-recipients', 'delivery-status part has no per-recipient fields');
  if (recipients.length > limits.maxRecipients) return tooMany(limits);
  const invalid = recipients.map(invalidField).findIndex((problem) => problem !== null);
  if (invalid >= 0)
    return failure('invalid-field', `recipient ${invalid + 1}: ${invalidField(recipients[invalid]!)}`);
  return ok({
    type: 'delivery-status',
    format: 'rfc3464',
    reportingMta: perMessage ? withoutType(firstField(perMessage, 'reporting-mta')) : null,
    recipients,
    original: returnedPart(mail),
  });
}

/** What is wrong with a recipient's fields, or null. */
function invalidField(r: DsnRecipient): string | null {
  if (!r.address) return 'no Final-Recipient or Original-Recipient address';
  if (r.action !== null && !ACTIONS.has(r.action))
    return `unknown Action ${JSON.stringify(r.action.slice(0, 40))}`;
  if (r.status !== null && !STATUS.test(r.status))
    return `malformed Status ${JSON.stringify(r.status.slice(0, 40))}`;
  return null;
}

function dsnRecipient(fields: HeaderFields): DsnRecipient {
  const diagnostic = withoutType(firstField(fields, 'diagnostic-code'));
  const smtpCode = diagnostic ? /^([245]\d\d)\b/.exec(diagnostic) : null;
  // RFC 3464: the code, optionally followed by a comment such as "(bad destination mailbox)".
  const status = firstField(fields, 'status')?.split(/[\s(]/)[0] || null;
  const originalRecipient = addressIn(firstField(fields, 'original-recipient'));
  return {
    address: addressIn(firstField(fields, 'final-recipient')) ?? originalRecipient,
    originalRecipient,
    action: firstField(fields, 'action')?.split(/[\s(]/)[0]?.toLowerCase() || null,
    status,
    smtpCode: smtpCode ? Number(smtpCode[1]) : null,
    diagnostic,
    remoteMta: withoutType(firstField(fields, 'remote-mta')),
  };
}

function feedback(mail: ParsedMail, limits: ParseLimits): ParseResult {
  const part = findPart(mail, [FEEDBACK_REPORT]);
  if (!part)
    return failure('no-feedback-report', 'multipart/report of type feedback-report without its report part');
  const fields = parseFieldGroups(part.content.toString('utf8'))[0];
  const feedbackType = fields ? firstField(fields, 'feedback-type')?.toLowerCase() : undefined;
  if (!fields || !feedbackType) return failure('no-feedback-type', 'feedback report without a Feedback-Type');
  const original = returnedPart(mail);
  const rcptTo = (fields.get('original-rcpt-to') ?? []).map(addressIn).filter((a) => a !== null);
  if (Math.max(rcptTo.length, original?.to.length ?? 0) > limits.maxRecipients) return tooMany(limits);
  return ok({
    type: 'feedback',
    feedbackType,
    userAgent: firstField(fields, 'user-agent'),
    sourceIp: firstField(fields, 'source-ip'),
    recipients: rcptTo.length > 0 ? rcptTo : (original?.to ?? []),
    original,
  });
}

/** The returned message or its headers (the third part of a report), read for the VERP return path. */
function returnedPart(mail: ParsedMail): OriginalMessage | null {
  const part = findPart(mail, RETURNED);
  return part ? originalFrom(parseHeaderSection(part.content.toString('utf8'))) : null;
}

function originalFrom(headers: HeaderFields): OriginalMessage | null {
  if (headers.size === 0) return null;
  const tidingsHeaders: Record<string, string> = {};
  for (const [name, values] of headers) {
    if (name.startsWith('x-tidings-') && values[0] !== undefined) tidingsHeaders[name] = values[0];
  }
  const to = (firstField(headers, 'to') ?? '')
    .split(',')
    .map(addressIn)
    .filter((a) => a !== null);
  return {
    returnPath: addressIn(firstField(headers, 'return-path')),
    messageId: firstField(headers, 'message-id'),
    from: addressIn(firstField(headers, 'from')),
    to,
    tidingsHeaders,
  };
}

function isAutoReply(mail: ParsedMail): boolean {
  const autoSubmitted = headerText(mail, 'auto-submitted').toLowerCase();
  return (
    autoSubmitted.startsWith('auto-replied') ||
    mail.headers.has('x-autoreply') ||
    mail.headers.has('x-autorespond') ||
    /^auto_reply$/i.test(headerText(mail, 'precedence')) ||
    /^(auto(matic)?[ -]?reply|out of (the )?office|auto:)/i.test(mail.subject ?? '')
  );
}

// mailparser leaves contentType unset on some malformed parts (found by fuzzing).
const findPart = (mail: ParsedMail, types: readonly string[]): Attachment | undefined =>
  mail.attachments.find(
    (a) => typeof a.contentType === 'string' && types.includes(a.contentType.toLowerCase()),
  );

function contentTypeOf(mail: ParsedMail): { value: string; params: Record<string, string> } | undefined {
  const value = mail.headers.get('content-type');
  return value && typeof value === 'object' && 'value' in value && 'params' in value
    ? (value as { value: string; params: Record<string, string> })
    : undefined;
}

function reportTypeOf(mail: ParsedMail): string | null {
  const contentType = contentTypeOf(mail);
  if (contentType?.value.toLowerCase() !== 'multipart/report') return null;
  return contentType.params['report-type']?.toLowerCase() ?? null;
}

function headerText(mail: ParsedMail, name: string): string {
  const value = mail.headers.get(name);
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && 'text' in value) return (value as AddressObject).text;
  return '';
}

/** `dns; mx.example.net` → `mx.example.net`; `smtp; 550 …` → `550 …`. */
function withoutType(value: string | null): string | null {
  if (value === null) return null;
  return value.replace(/^\s*[a-z0-9-]+\s*;\s*/i, '').trim() || null;
}

const tooMany = (limits: ParseLimits): ParseResult =>
  failure('too-many-recipients', `names more than ${limits.maxRecipients} recipients`);

const ok = (report: MailReport): ParseResult => ({ ok: true, report });
const failure = (reason: ParseFailure, detail: string): ParseResult => ({ ok: false, reason, detail });
