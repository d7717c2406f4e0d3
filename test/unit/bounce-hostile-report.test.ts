/**
 * Reports written by an attacker: built to make a backtracking parser take hours (a 48 KB one
 * stalled the event loop for 3.6 s before the parser was made linear), or with fields RFC 3464 does
 * not allow, which go to the DLQ with their reason instead of being guessed at or counted as ignored.
 * The size here is 1 MB: a quadratic parser does not finish within the test's timeout, a linear one
 * takes milliseconds; no time is asserted.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { addressIn } from '../../services/bounce/header-fields.ts';
import { parseReport } from '../../services/bounce/report-parser.ts';
import { PATHOLOGICAL } from '../fuzz/pathological.ts';

const MB = 1024 * 1024;
const DSN = readFileSync(
  join(import.meta.dirname, '..', 'fixtures', 'bounces', 'postfix-user-unknown.eml'),
  'utf8',
);

describe('pathological reports are parsed in linear time', () => {
  for (const [name, make] of Object.entries(PATHOLOGICAL)) {
    test(`${name}, 1 MB`, { timeout: 120_000 }, async () => {
      const parsed = await parseReport(make(MB));
      // Whatever the verdict, it is one: a result or a reason for the DLQ.
      assert.ok(parsed.ok || parsed.detail.length > 0);
    });
  }

  test('an address field of a megabyte yields at most a bounded address', () => {
    assert.equal(addressIn(`rfc822; ${'a'.repeat(MB)}`), null);
    const long = addressIn(`rfc822; ${'a@'.repeat(MB / 2)}x`);
    assert.ok(long === null || long.length <= 1000);
    assert.equal(addressIn(`Jane ${'<'.repeat(MB)}<jane@example.org>`), null, 'past the cap is not read');
    assert.equal(addressIn(`Jane ${'<'.repeat(900)}<jane@example.org>`), 'jane@example.org');
  });
});

describe('invalid per-recipient fields go to the DLQ with their reason', () => {
  const withField = (from: RegExp, to: string) => {
    assert.match(DSN, from);
    return DSN.replace(from, to);
  };

  test('an unknown Action', async () => {
    const parsed = await parseReport(withField(/^Action: failed$/m, 'Action: obliterated'));
    assert.deepEqual(parsed.ok ? null : [parsed.reason, parsed.detail], [
      'invalid-field',
      'recipient 1: unknown Action "obliterated"',
    ]);
  });

  test('a malformed Status', async () => {
    const parsed = await parseReport(withField(/^Status: 5\.1\.1$/m, 'Status: 5.1.1.1'));
    assert.deepEqual(parsed.ok ? null : parsed.reason, 'invalid-field');
  });

  test('an empty recipient', async () => {
    const raw = withField(/^Final-Recipient: .*\r?\nOriginal-Recipient: .*$/m, 'Final-Recipient: rfc822;');
    const parsed = await parseReport(raw);
    assert.deepEqual(parsed.ok ? null : parsed.reason, 'invalid-field');
  });

  test('more recipient groups than the limit', async () => {
    const groups = Array.from(
      { length: 6 },
      (_, i) => `Final-Recipient: rfc822; r${i}@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n`,
    );
    const raw = withField(/^Final-Recipient: [\s\S]*?\r?\n\r?\n/m, `${groups.join('\r\n')}\r\n`);
    assert.equal((await parseReport(raw, { maxRecipients: 10 })).ok, true);
    const parsed = await parseReport(raw, { maxRecipients: 5 });
    assert.deepEqual(parsed.ok ? null : parsed.reason, 'too-many-recipients');
  });

  test('a Status with a comment is still read', async () => {
    const parsed = await parseReport(
      withField(/^Status: 5\.1\.1$/m, 'Status: 5.1.1 (bad destination mailbox)'),
    );
    assert.ok(parsed.ok && parsed.report.type === 'delivery-status');
    assert.equal(parsed.report.recipients[0]?.status, '5.1.1');
  });
});
