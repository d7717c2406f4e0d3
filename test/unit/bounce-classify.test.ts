import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import type { DsnRecipient, MailReport } from '../../services/bounce/bounce-report.ts';
import { classifyReport, effectiveStatus, failureKind, isComplaint } from '../../services/bounce/classify.ts';
import { parseReport } from '../../services/bounce/report-parser.ts';

function recipient(overrides: Partial<DsnRecipient>): DsnRecipient {
  return {
    address: 'a@example.com',
    originalRecipient: null,
    action: 'failed',
    status: '5.1.1',
    smtpCode: 550,
    diagnostic: null,
    remoteMta: null,
    ...overrides,
  };
}

const dsn = (...recipients: DsnRecipient[]): MailReport => ({
  type: 'delivery-status',
  format: 'rfc3464',
  reportingMta: null,
  recipients,
  original: null,
});

describe('failure kind', () => {
  test('class 5 is hard and class 4 soft', () => {
    assert.equal(failureKind('5.1.1', 550), 'hard');
    assert.equal(failureKind('5.1.10', 550), 'hard');
    assert.equal(failureKind('5.4.4', 554), 'hard');
    assert.equal(failureKind('4.2.2', 452), 'soft');
    assert.equal(failureKind('4.4.7', null), 'soft');
  });

  test('permanent failures about the message or our reputation are soft', () => {
    assert.equal(failureKind('5.2.2', 552), 'soft', 'mailbox full');
    assert.equal(failureKind('5.2.3', 552), 'soft', 'message too big for the mailbox');
    assert.equal(failureKind('5.3.4', 552), 'soft', 'message too big for the system');
    assert.equal(failureKind('5.6.1', 554), 'soft', 'media not supported');
    assert.equal(failureKind('5.7.606', 550), 'soft', 'banned sending IP');
  });

  test('without an enhanced code the reply code decides; without either, soft', () => {
    assert.equal(failureKind(null, 550), 'hard');
    assert.equal(failureKind(null, 554), 'hard');
    assert.equal(failureKind(null, 552), 'soft');
    assert.equal(failureKind(null, 421), 'soft');
    assert.equal(failureKind(null, null), 'soft');
  });

  test('success codes are no failure', () => {
    assert.equal(failureKind('2.0.0', 250), null);
    assert.equal(failureKind(null, 250), null);
  });
});

describe('effective status', () => {
  test('a generic x.0.0 status yields to the specific code of the same class in the diagnostic', () => {
    assert.equal(effectiveStatus({ status: '5.0.0', diagnostic: '550 5.1.1 user unknown' }), '5.1.1');
    assert.equal(effectiveStatus({ status: '5.0.0', diagnostic: '452 4.2.2 over quota' }), '5.0.0');
    assert.equal(effectiveStatus({ status: '5.2.2', diagnostic: '550 5.1.1 user unknown' }), '5.2.2');
    assert.equal(effectiveStatus({ status: null, diagnostic: '452 4.2.2 over quota' }), '4.2.2');
    assert.equal(effectiveStatus({ status: null, diagnostic: null }), null);
  });
});

describe('classifying reports', () => {
  test('only failed recipients are bounces', () => {
    const report = classifyReport(
      dsn(
        recipient({ address: 'hard@example.com' }),
        recipient({ address: 'later@example.com', action: 'delayed', status: '4.4.1' }),
        recipient({ address: 'ok@example.com', action: 'delivered', status: '2.0.0' }),
        recipient({ address: null }),
      ),
    );
    assert.deepEqual(
      report.findings.map((f) => [f.address, f.kind]),
      [['hard@example.com', 'hard']],
    );
    assert.deepEqual(
      report.ignored.map((i) => i.why),
      ['delayed', 'delivered', 'no address'],
    );
  });

  test('a forwarded address keeps the address Tidings mailed, which the VERP token was issued for', () => {
    const report = classifyReport(
      dsn(
        recipient({ address: 'alice@new.example', originalRecipient: 'alice@old.example' }),
        recipient({ address: 'bob@example.com', originalRecipient: 'Bob@Example.com' }),
      ),
    );
    assert.deepEqual(
      report.findings.map((f) => [f.address, f.originalRecipient]),
      [
        ['alice@new.example', 'alice@old.example'],
        ['bob@example.com', null],
      ],
    );
  });

  test('a failed recipient reporting a success code is not a bounce', () => {
    const report = classifyReport(dsn(recipient({ status: '2.0.0', smtpCode: 250 })));
    assert.equal(report.findings.length, 0);
    assert.equal(report.ignored[0]?.why, 'success status 2.0.0');
  });

  test('abuse and fraud reports are complaints; other feedback is not', () => {
    assert.ok(isComplaint('abuse'));
    assert.ok(isComplaint('Fraud'));
    assert.ok(isComplaint(null));
    assert.ok(!isComplaint('not-spam'));
    assert.ok(!isComplaint('auth-failure'));
    assert.ok(!isComplaint('virus'));
    const report = classifyReport({
      type: 'feedback',
      feedbackType: 'abuse',
      userAgent: null,
      sourceIp: null,
      recipients: ['a@example.com', 'b@example.com'],
      original: null,
    });
    assert.deepEqual(
      report.findings.map((f) => [f.address, f.kind]),
      [
        ['a@example.com', 'complaint'],
        ['b@example.com', 'complaint'],
      ],
    );
    assert.equal(report.source, 'arf');
  });
});

describe('parsing odd input', () => {
  test('empty and binary input are unrecognized, not thrown', async () => {
    for (const raw of ['', Buffer.from([0, 1, 2, 255, 254, 10, 10, 0])]) {
      const parsed = await parseReport(raw);
      assert.equal(parsed.ok, false);
      assert.equal(!parsed.ok && parsed.reason, 'unrecognized');
    }
  });

  test('CRLF line endings and upper-case field names parse like the usual form', async () => {
    const raw = [
      'From: MAILER-DAEMON@mx.example.com',
      'To: bounces+x@bounce.example.org',
      'Subject: Undelivered Mail Returned to Sender',
      'MIME-Version: 1.0',
      'Content-Type: multipart/report; report-type="delivery-status"; boundary="B"',
      '',
      '--B',
      'Content-Type: text/plain',
      '',
      'Failed.',
      '--B',
      'Content-Type: message/delivery-status',
      '',
      'REPORTING-MTA: dns; mx.example.com',
      '',
      'FINAL-RECIPIENT: RFC822; <Someone@Example.com>',
      'ACTION: Failed',
      'STATUS: 5.1.1 (bad destination mailbox address)',
      'DIAGNOSTIC-CODE: smtp; 550 no such user',
      '--B--',
      '',
    ].join('\r\n');
    const parsed = await parseReport(raw);
    assert.ok(parsed.ok, JSON.stringify(parsed));
    assert.equal(parsed.report.type, 'delivery-status');
    const r = parsed.report.type === 'delivery-status' ? parsed.report.recipients[0] : undefined;
    assert.equal(r?.address, 'Someone@Example.com');
    assert.equal(r?.action, 'failed');
    assert.equal(r?.status, '5.1.1');
    assert.equal(r?.smtpCode, 550);
    assert.equal(parsed.report.type === 'delivery-status' && parsed.report.reportingMta, 'mx.example.com');
  });

  test('a plain-text bounce naming its recipients only in X-Failed-Recipients', async () => {
    const raw = [
      'From: Mail Delivery System <Mailer-Daemon@mx.example.com>',
      'To: bounces+x@bounce.example.org',
      'Subject: Mail delivery failed: returning message to sender',
      'X-Failed-Recipients: one@example.com, two@example.com',
      '',
      'This message was created automatically by mail delivery software.',
      'A message that you sent could not be delivered. This is a permanent error.',
      'Remote server said: 550 5.1.1 mailbox unavailable',
      '',
    ].join('\n');
    const parsed = await parseReport(raw);
    assert.ok(parsed.ok, JSON.stringify(parsed));
    assert.deepEqual(
      classifyReport(parsed.report).findings.map((f) => [f.address, f.kind, f.status]),
      [
        ['one@example.com', 'hard', '5.1.1'],
        ['two@example.com', 'hard', '5.1.1'],
      ],
    );
  });

  test('the returned message tells who sent it, for the sending domain', async () => {
    const raw = readFileSync(new URL('../fixtures/bounces/postfix-user-unknown.eml', import.meta.url));
    const parsed = await parseReport(raw);
    assert.ok(parsed.ok);
    assert.equal(parsed.report.original?.from, 'wiki@tidings.example.org');
    assert.deepEqual(parsed.report.original?.to, ['alice@example.com']);
  });
});
