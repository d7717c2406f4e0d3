import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addressHash, returnPath, verifyReturnPath } from '../../libs/mail/verp.ts';
import { attributeFindings, bounceRecord, sendingDomainOf } from '../../services/bounce/bounce-records.ts';
import type { BounceFinding, BounceReport } from '../../services/bounce/bounce-report.ts';

const NOW = Date.parse('2026-11-21T12:00:00Z');
const KEYRING = { current: 1, keys: [{ id: 1, secret: 'k'.repeat(32) }] };
const ORIGIN = { dc: 'eqiad', producer: 'bounce', now: NOW };

function token(recipient: string, messageId: string) {
  const address = returnPath({ messageId, recipient, domain: 'b.example', now: NOW }, KEYRING);
  const verdict = verifyReturnPath(address, KEYRING.keys, { now: NOW, maxAgeMs: 86_400_000 });
  assert.ok(verdict.ok);
  return verdict.fields;
}

const finding = (address: string, originalRecipient: string | null = null): BounceFinding => ({
  address,
  originalRecipient,
  kind: 'hard',
  status: '5.1.1',
  smtpCode: 550,
  diagnostic: '550 5.1.1 user unknown',
});

const report = (findings: BounceFinding[]): BounceReport => ({
  source: 'smtp_dsn',
  findings,
  ignored: [],
  original: {
    returnPath: null,
    messageId: null,
    from: 'wiki@Tidings.Example.org',
    to: [],
    tidingsHeaders: { 'x-tidings-recipient': 'u7', 'x-tidings-send-id': 'from-header' },
  },
});

test('a finding becomes a record keyed by the address hash, with the send id of its token', () => {
  const { records, unattributed } = attributeFindings(
    report([finding('alice@example.com')]),
    [token('alice@example.com', 'aaaa0001')],
    KEYRING.keys,
    ORIGIN,
  );
  assert.deepEqual(unattributed, []);
  const [record] = records;
  assert.equal(record?.address_hash, addressHash('alice@example.com'));
  assert.equal(record?.send_id, 'aaaa0001');
  assert.equal(record?.recipient_id, null, 'X-Tidings-Recipient is what the reporter wrote: it names nobody');
  assert.equal(record?.sending_domain, 'tidings.example.org');
  assert.equal(record?.meta.dt, NOW);
  assert.deepEqual([record?.kind, record?.status, record?.smtp_code], ['hard', '5.1.1', 550]);
});

test('an address no token was issued for is not acted on: a valid token cannot suppress someone else', () => {
  const { records, unattributed } = attributeFindings(
    report([finding('alice@example.com'), finding('victim@example.com')]),
    [token('alice@example.com', 'aaaa0001')],
    KEYRING.keys,
    ORIGIN,
  );
  assert.deepEqual(
    records.map((r) => r.address),
    ['alice@example.com'],
  );
  assert.deepEqual(
    unattributed.map((f) => f.address),
    ['victim@example.com'],
  );
});

test('after a forward the record names the address Tidings mailed, which the token was issued for', () => {
  const { records } = attributeFindings(
    report([finding('alice@forwarded.example', 'alice@example.com')]),
    [token('alice@example.com', 'aaaa0002')],
    KEYRING.keys,
    ORIGIN,
  );
  assert.equal(records[0]?.address, 'alice@example.com');
  assert.equal(records[0]?.address_hash, addressHash('alice@example.com'));
});

test('each finding takes the token issued for its own address when a mail had several', () => {
  const { records } = attributeFindings(
    report([finding('b@example.com'), finding('a@example.com')]),
    [token('a@example.com', 'aaaa0003'), token('b@example.com', 'bbbb0003')],
    KEYRING.keys,
    ORIGIN,
  );
  assert.deepEqual(
    records.map((r) => [r.address, r.send_id]),
    [
      ['b@example.com', 'bbbb0003'],
      ['a@example.com', 'aaaa0003'],
    ],
  );
});

test('without a token the send id comes from X-Tidings-Send-Id only in a signed webhook', () => {
  const mailed = report([finding('alice@example.com')]);
  assert.equal(bounceRecord(mailed, mailed.findings[0]!, null, ORIGIN).send_id, null);
  const signed: BounceReport = { ...mailed, source: 'webhook' };
  const record = bounceRecord(signed, signed.findings[0]!, null, ORIGIN);
  assert.deepEqual([record.send_id, record.recipient_id], ['from-header', null]);
});

test('the sending domain is the From domain, lower-cased, or null', () => {
  assert.equal(sendingDomainOf(null), null);
  assert.equal(
    sendingDomainOf({ returnPath: null, messageId: null, from: null, to: [], tidingsHeaders: {} }),
    null,
  );
  assert.equal(
    sendingDomainOf({
      returnPath: null,
      messageId: null,
      from: 'x@Mail.Example',
      to: [],
      tidingsHeaders: {},
    }),
    'mail.example',
  );
});
