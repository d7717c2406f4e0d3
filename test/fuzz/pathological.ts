/**
 * Reports built to make a backtracking parser slow: each repeats, up to a size, a pattern that some
 * regex of a naive bounce parser retries from every position (long runs without the character it
 * waits for, runs of "@", dashes without the words a copy marker needs). Used by the parser's
 * attack test and by `make bench`, which reports the worst parse time per 64 KB over them.
 */

const CRLF = '\r\n';

const fill = (unit: string, bytes: number) => unit.repeat(Math.max(1, Math.ceil(bytes / unit.length)));

function dsn(recipientFields: string, extraPerMessage = ''): string {
  return [
    'From: MAILER-DAEMON@mx.example.net',
    'To: bounces+x@bounce.example',
    'Subject: Undelivered Mail Returned to Sender',
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=delivery-status; boundary="b"',
    '',
    '--b',
    'Content-Type: text/plain',
    '',
    'Delivery failed.',
    '--b',
    'Content-Type: message/delivery-status',
    '',
    `Reporting-MTA: dns; mx.example.net${extraPerMessage}`,
    '',
    recipientFields,
    '--b--',
    '',
  ].join(CRLF);
}

function plain(body: string): string {
  return [
    'From: MAILER-DAEMON@mx.example.net',
    'To: bounces+x@bounce.example',
    'Subject: Mail delivery failed: returning message to sender',
    'Content-Type: text/plain',
    '',
    'This message was created automatically by mail delivery software.',
    '',
    body,
    '',
  ].join(CRLF);
}

/** name → a raw report of about `bytes` bytes. */
export const PATHOLOGICAL: Readonly<Record<string, (bytes: number) => string>> = {
  // An address field that is one long token without "@": a bare-address regex retries every start.
  'final-recipient-no-at': (bytes) =>
    dsn(`Final-Recipient: rfc822; ${fill('a', bytes)}${CRLF}Action: failed${CRLF}Status: 5.1.1`),
  // The same with "@" everywhere and nothing after the last one.
  'final-recipient-at-run': (bytes) =>
    dsn(`Final-Recipient: rfc822; ${fill('a@', bytes)}${CRLF}Action: failed${CRLF}Status: 5.1.1`),
  // Folded continuation lines joined into one huge field value.
  'folded-diagnostic': (bytes) =>
    dsn(
      `Final-Recipient: rfc822; a@b.example${CRLF}Action: failed${CRLF}Status: 5.1.1${CRLF}Diagnostic-Code: smtp; 550${fill(`${CRLF} a@a@a@a@a@`, bytes)}`,
    ),
  // Many recipient groups, each a few bytes.
  'recipient-groups': (bytes) =>
    dsn(fill(`Final-Recipient: rfc822; a@b.example${CRLF}Action: failed${CRLF}${CRLF}`, bytes)),
  // A plain bounce whose indented "address" line is a run of "@".
  'plain-address-line': (bytes) => plain(`  ${fill('a@', bytes)}b c`),
  // A plain bounce with a line of dashes that never says "copy of the message".
  'plain-dash-line': (bytes) => plain(`${fill('-', bytes)}x`),
  // A plain bounce that is one long line of address-like tokens.
  'plain-one-line': (bytes) => plain(fill('a@a ', bytes)),
};
