/**
 * A notify.email-send record as the message handed to SMTP. The envelope sender is the signed VERP
 * return path, so a bounce names the message and the recipient; Message-ID derives from send_id;
 * X-Tidings-Send-Id names the record and X-Tidings-Recipient the person (returned inside complaint
 * reports, it lets the bounce service turn off that person's email without an address lookup). Headers from the record are copied only under valid field
 * names that do not collide with the ones set here or with routing (a "Bcc" in the map must not add
 * a recipient), and CR/LF in any value becomes a space, so user content cannot start a header.
 */
import type { NotifyEmailSend } from '../../libs/schemas/types.generated.ts';
import { messageIdOf } from './message.ts';

export interface OutgoingMail {
  readonly envelope: { readonly from: string; readonly to: readonly string[] };
  readonly from: string;
  readonly to: string;
  readonly subject: string;
  readonly text: string;
  readonly html: string;
  readonly messageId: string;
  readonly headers: Readonly<Record<string, string>>;
}

export const SEND_ID_HEADER = 'X-Tidings-Send-Id';
export const RECIPIENT_HEADER = 'X-Tidings-Recipient';

// Set from the record's own fields or by the transport, or deciding where the mail goes.
const RESERVED = new Set(
  [
    'from',
    'to',
    'cc',
    'bcc',
    'sender',
    'reply-to',
    'subject',
    'date',
    'message-id',
    'return-path',
    'mime-version',
    'content-type',
    'content-transfer-encoding',
    SEND_ID_HEADER,
    RECIPIENT_HEADER,
  ].map((name) => name.toLowerCase()),
);

// RFC 5322 field name: printable US-ASCII except ":".
const FIELD_NAME = /^[!-9;-~]{1,76}$/;
// One bare address: the envelope must never fan out to a list.
const SINGLE_ADDRESS = /^[^\s@,;<>"()[\]\\]+@[^\s@,;<>"()[\]\\]+$/;

const oneLine = (value: string) => value.replace(/[\r\n]+/g, ' ');

export class UnsendableMailError extends Error {
  override name = 'UnsendableMailError';
}

/** The domain of the From address ("Wiki <wiki@mail.example.org>" → mail.example.org). */
export function senderDomain(from: string): string {
  const domain = /@([^\s@<>]+)>?\s*$/.exec(from)?.[1];
  if (!domain) throw new UnsendableMailError(`From ${JSON.stringify(from)} has no address with a domain`);
  return domain;
}

export function outgoingMail(record: NotifyEmailSend, returnPath: string): OutgoingMail {
  const to = record.to.trim();
  if (!SINGLE_ADDRESS.test(to))
    throw new UnsendableMailError(`recipient must be one plain address, got ${JSON.stringify(record.to)}`);
  let messageId: string;
  try {
    messageId = messageIdOf(record.send_id, senderDomain(record.from));
  } catch (error) {
    throw new UnsendableMailError((error as Error).message);
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(record.headers)) {
    if (FIELD_NAME.test(name) && !RESERVED.has(name.toLowerCase())) headers[name] = oneLine(value);
  }
  headers[SEND_ID_HEADER] = record.send_id;
  headers[RECIPIENT_HEADER] = oneLine(record.recipient_id);
  return {
    envelope: { from: returnPath, to: [to] },
    from: oneLine(record.from),
    to,
    subject: oneLine(record.subject),
    text: record.text,
    html: record.html,
    messageId,
    headers,
  };
}
