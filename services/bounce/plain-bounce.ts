/**
 * Bounces that are not RFC 3464 reports: Exim's "This message was created automatically by mail
 * delivery software", qmail's "This is the qmail-send program", and the many look-alikes. They are
 * recognised by their wording and read line by line; what cannot be read from them is left null
 * rather than guessed, except that a bounce calling itself permanent without any code gets 5.0.0.
 *
 * The text is the reporter's: it is read as lines cut to MAX_LINE_CHARS, only the first
 * MAX_TEXT_CHARS of it, and lines are recognised by plain string checks, never by a pattern that
 * could retry from every position of a long line.
 */
import type { DsnRecipient } from './bounce-report.ts';

export interface PlainBounce {
  readonly reportingMta: string | null;
  readonly recipients: readonly DsnRecipient[];
  /** The returned copy of the message (headers at least), when the bounce includes one. */
  readonly returnedMessage: string | null;
}

export interface PlainBounceInput {
  readonly text: string;
  readonly subject: string;
  readonly from: string;
  /** Exim's X-Failed-Recipients header, when present. */
  readonly failedRecipients: readonly string[];
}

const SIGNATURES = [
  /created automatically by mail delivery software/i,
  /this is the qmail-send program/i,
  /could not be delivered to one or more (of its )?recipients/i,
  /delivery to the following recipients? (failed|has been delayed)/i,
  /i'm afraid i wasn't able to deliver your message/i,
];
const BOUNCE_SUBJECT =
  /^(undeliver|mail delivery failed|failure notice|returned mail|delivery (status notification|failure))/i;
const DAEMON = /mailer-daemon|postmaster/i;
/** Lines longer than RFC 5322's limit are cut: nothing a bounce says needs more. */
const MAX_LINE_CHARS = 998;
/** The explanation of a bounce is a screenful; a returned copy after it is read separately. */
const MAX_TEXT_CHARS = 256 * 1024;
const DELAYED =
  /has not yet been delivered|delivery has been delayed|will (continue to )?(re)?try|still trying/i;
const PERMANENT = /permanent (error|failure)|giving up|given up/i;

/** null when the message does not read like a bounce at all. */
export function parsePlainBounce(input: PlainBounceInput): PlainBounce | null {
  const looksLikeBounce =
    SIGNATURES.some((s) => s.test(input.text)) ||
    (BOUNCE_SUBJECT.test(input.subject) && DAEMON.test(input.from)) ||
    input.failedRecipients.length > 0;
  if (!looksLikeBounce) return null;

  const lines = input.text
    .slice(0, MAX_TEXT_CHARS)
    .split(/\r?\n/)
    .map((line) => line.slice(0, MAX_LINE_CHARS));
  const marker = lines.findIndex(isCopyMarker);
  const explanation = (marker < 0 ? lines : lines.slice(0, marker)).join('\n');
  const returnedMessage = marker < 0 ? null : lines.slice(marker + 1).join('\n');
  const delayed = DELAYED.test(explanation) && !PERMANENT.test(explanation);
  const permanent = PERMANENT.test(explanation);

  const blocks = addressBlocks(explanation);
  const fromHeader = input.failedRecipients
    .filter((a) => !blocks.some((b) => b.address.toLowerCase() === a.toLowerCase()))
    .map((address) => ({ address, text: explanation }));
  const recipients = [...blocks, ...fromHeader].map(({ address, text }): DsnRecipient => {
    const smtpCode = /(?:^|\s)([245]\d\d)(?=[ :-])/m.exec(text);
    const enhanced = /\b([245]\.\d{1,3}\.\d{1,3})\b/.exec(text);
    const codeLine = smtpCode
      ? text
          .slice(smtpCode.index + smtpCode[0].length - 3)
          .split('\n')[0]!
          .trim()
      : null;
    return {
      address,
      originalRecipient: null,
      action: delayed ? 'delayed' : 'failed',
      status: enhanced ? enhanced[1]! : permanent && !smtpCode ? '5.0.0' : null,
      smtpCode: smtpCode ? Number(smtpCode[1]) : null,
      diagnostic: codeLine ?? (text.replace(/\s+/g, ' ').trim().slice(0, 500) || null),
      remoteMta: null,
    };
  });
  const qmailHost = /qmail-send program at ([\w.-]+?)\.?\s/i.exec(explanation);
  return { reportingMta: qmailHost ? qmailHost[1]! : null, recipients, returnedMessage };
}

/** `---- A copy of the message follows ----` and the like. */
function isCopyMarker(line: string): boolean {
  const lower = line.trimStart().toLowerCase();
  return (
    lower.startsWith('--') && (lower.includes('copy of the message') || lower.includes('original message'))
  );
}

/** A line holding only an address: qmail's `<a@b.c>:` or Exim's indented `  a@b.c`; else null. */
function addressLine(line: string): string | null {
  const text = line.replace(/[ \t]+$/, '');
  if (text.startsWith('<') && text.endsWith('>:')) {
    const inside = text.slice(1, -2);
    return isAddress(inside, '<>') ? inside : null;
  }
  const indent = text.length - text.trimStart().length;
  if (indent < 1 || indent > 4 || !/^[ \t]+$/.test(text.slice(0, indent))) return null;
  let address = text.slice(indent);
  if (address.startsWith('<')) address = address.slice(1);
  if (address.endsWith(':')) address = address.slice(0, -1);
  if (address.endsWith('>')) address = address.slice(0, -1);
  return isAddress(address, '<>:') ? address : null;
}

/** No space or `forbidden` character, and an "@" with something on both sides. */
function isAddress(text: string, forbidden: string): boolean {
  for (const ch of text) if (ch === ' ' || ch === '\t' || forbidden.includes(ch)) return false;
  const at = text.indexOf('@', 1);
  return at > 0 && at < text.length - 1 && !/\s/.test(text);
}

function addressBlocks(explanation: string): { address: string; text: string }[] {
  const lines = explanation.split('\n');
  const anchors = lines.flatMap((line, index) => {
    const address = addressLine(line);
    return address ? [{ address, index }] : [];
  });
  return anchors.map(({ address, index }, i) => ({
    address,
    text: lines.slice(index + 1, anchors[i + 1]?.index ?? lines.length).join('\n'),
  }));
}
