import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import {
  alignmentProblems,
  dkimDnsRecords,
  organizationalDomain,
  parseDkimKeyring,
} from '../../libs/mail/dkim.ts';

const rsa = (bits: number) =>
  generateKeyPairSync('rsa', { modulusLength: bits })
    .privateKey.export({ type: 'pkcs8', format: 'pem' })
    .toString();
const files: Record<string, string> = {
  '/k/new.pem': rsa(2048),
  '/k/old.pem': rsa(2048),
  '/k/short.pem': rsa(512),
  '/k/ed.pem': generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  '/k/junk.pem': 'not a key',
};
const read = (path: string) => {
  const text = files[path];
  if (text === undefined) throw Object.assign(new Error('missing'), { code: 'ENOENT' });
  return text;
};

test('the first selector signs; every selector gets its TXT record, cut into 255-byte strings', () => {
  const ring = parseDkimKeyring('new:/k/new.pem, old:/k/old.pem', 'Mail.Example.org', read);
  assert.equal(ring.signing.selector, 'new');
  const records = dkimDnsRecords(ring);
  assert.deepEqual(
    records.map((r) => [r.name, r.signing]),
    [
      ['new._domainkey.mail.example.org', true],
      ['old._domainkey.mail.example.org', false],
    ],
  );
  for (const record of records) {
    assert.match(record.value, /^v=DKIM1; k=rsa; p=[A-Za-z0-9+/]+=*$/);
    assert.equal(record.strings.join(''), record.value);
    assert.ok(record.strings.length > 1 && record.strings.every((s) => s.length <= 255));
  }
});

test('every problem of the ring is named at once, without key material', () => {
  assert.throws(
    () =>
      parseDkimKeyring(
        'a:/k/missing.pem,b:/k/junk.pem,c:/k/short.pem,d:/k/ed.pem,nocolon,new:/k/new.pem,new:/k/old.pem',
        'mail.example.org',
        read,
      ),
    (error: Error) => {
      assert.equal(
        error.message,
        'DKIM_KEYS: selector a: cannot read /k/missing.pem: ENOENT; selector b: /k/junk.pem is not a PEM private key; ' +
          'selector c: /k/short.pem has 512 bits; use at least 2048; ' +
          'selector d: /k/ed.pem is a ed25519 key; DKIM signing needs RSA (openssl genrsa 2048); ' +
          'entry 5: expected <selector>:<path to a PEM RSA private key>; selector new: listed twice',
      );
      return true;
    },
  );
});

test('alignment is relaxed, by organizational domain under the public suffix list', () => {
  assert.equal(organizationalDomain('bounces.mail.example.co.uk'), 'example.co.uk');
  assert.deepEqual(
    alignmentProblems({ from: 'mail.example.org', dkim: 'example.org', returnPath: 'bounces.example.org' }),
    [],
  );
  const problems = alignmentProblems({
    from: 'mail.example.co.uk',
    dkim: 'other.co.uk',
    returnPath: 'b.example.net',
  });
  assert.equal(problems.length, 2);
  assert.match(
    problems[0] ?? '',
    /^DKIM d=other\.co\.uk does not align with the From domain mail\.example\.co\.uk/,
  );
  assert.match(problems[1] ?? '', /return-path domain b\.example\.net does not align/);
  assert.match(
    alignmentProblems({ from: 'mail.example.org', dkim: null, returnPath: 'bounces.example.org' })[0] ?? '',
    /without a DKIM signature/,
  );
});
