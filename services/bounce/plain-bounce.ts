/**
 * Bounces that are not RFC 3464 reports: Exim's "This message was created automatically by mail
 * delivery software", qmail's "This is the qmail-send program", and the many look-alikes. They are
 * recognised by their wording and read line by line; what cannot be read from them is left null
 * rather than guessed, except that a bounce calling itself permanent without any code gets 5.0.0.
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
const COPY_MARKER = /^[ \t]*-{2,}.*(copy of the message|original message).*$/im;
/** A line holding only an address: qmail's `<a@b.c>:` or Exim's indented `  a@b.c`. */
const ADDRESS_LINE = /^(?:<([^<>\s]+@[^<>\s]+)>:|[ \t]{1,4}<?([^<>\s:]+@[^<>\s:]+?)>?:?)[ \t]*$/gm;
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

  const marker = COPY_MARKER.exec(input.text);
  const explanation = marker ? input.text.slice(0, marker.index) : input.text;
  const returnedMessage = marker ? input.text.slice(marker.index + marker[0].length) : null;
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

function addressBlocks(explanation: string): { address: string; text: string }[] {
  const anchors = [...explanation.matchAll(ADDRESS_LINE)];
  return anchors.map((m, i) => ({
    address: (m[1] ?? m[2])!,
    text: explanation.slice(m.index + m[0].length, anchors[i + 1]?.index ?? explanation.length),
  }));
}
