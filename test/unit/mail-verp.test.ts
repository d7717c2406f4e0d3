import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  addressHash,
  issuedFor,
  parseVerpKeyring,
  returnPath,
  type VerpKeyring,
  verifyReturnPath,
} from '../../libs/mail/verp.ts';

const NOW = Date.parse('2026-11-21T12:00:00Z');
const DAY = 86_400_000;
const KEYRING: VerpKeyring = { current: 2, keys: [{ id: 2, secret: 'secret-two' }] };
const SEND_ID = '0123456789abcdef0123456789abcdef';
const verify = (address: string, keys = KEYRING.keys, now = NOW) =>
  verifyReturnPath(address, keys, { now, maxAgeMs: 30 * DAY, domain: 'bounce.example.org' });

function build(messageId = SEND_ID, recipient = 'Alice@Example.com', now = NOW): string {
  return returnPath({ messageId, recipient, domain: 'bounce.example.org', now }, KEYRING);
}

function localPart(address: string): string {
  return address.slice(0, address.lastIndexOf('@'));
}

describe('VERP return paths', () => {
  test('round-trips the message id, the recipient and the issue time', () => {
    const address = build();
    const result = verify(address);
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(result.fields.messageId, SEND_ID);
    assert.equal(result.fields.keyId, 2);
    assert.equal(result.fields.issuedAt, NOW);
    assert.ok(issuedFor(result.fields, 'alice@example.com', KEYRING.keys));
    assert.ok(!issuedFor(result.fields, 'mallory@example.com', KEYRING.keys));
  });

  test('a token binds the whole address: one sharing its hash prefix does not pass for it', () => {
    // Found by hashing m0, m1, … @attacker.example until two shared 32 bits (57,007 hashes, well
    // under a second); an attacker targeting one victim's prefix needs ~2^32, minutes on two cores.
    const mailed = 'm53286@attacker.example';
    const lookalike = 'm57006@attacker.example';
    assert.equal(addressHash(lookalike).slice(0, 8), addressHash(mailed).slice(0, 8));
    const result = verify(build(SEND_ID, mailed));
    assert.ok(result.ok);
    assert.ok(issuedFor(result.fields, mailed, KEYRING.keys));
    assert.ok(!issuedFor(result.fields, lookalike, KEYRING.keys), 'the look-alike address is not bound');
  });

  test('a verified token checks addresses only with the key that signed it', () => {
    const result = verify(build());
    assert.ok(result.ok);
    assert.ok(!issuedFor(result.fields, 'alice@example.com', [{ id: 2, secret: 'another' }]));
    assert.ok(!issuedFor(result.fields, 'alice@example.com', []));
  });

  test('local parts stay within 64 characters of lower-case letters and digits', () => {
    for (const id of [SEND_ID, '8f0c3d6e-1b2a-4c5d-8e9f-0a1b2c3d4e5f', 'weekly-u1-2026w47']) {
      const address = build(id);
      assert.match(localPart(address), /^bounces\+[a-z2-7]+$/);
      assert.ok(localPart(address).length <= 64, address);
      const result = verify(address);
      assert.ok(result.ok);
      assert.equal(result.fields.messageId, id);
    }
  });

  test('an id that cannot fit in 64 characters is refused when building, not truncated', () => {
    assert.throws(() => build('x'.repeat(40)), RangeError);
  });

  test('verifies addresses an MTA upper- or lower-cased', () => {
    const address = build();
    assert.ok(verify(address.toUpperCase()).ok);
    assert.ok(verify(address.toLowerCase()).ok);
    assert.ok(verify(`<${address}>`).ok, 'as written in a Return-Path header');
  });

  test('a token with one character changed is forged', () => {
    const address = build();
    const i = address.indexOf('+') + 12;
    const changed = `${address.slice(0, i)}${address[i] === 'a' ? 'b' : 'a'}${address.slice(i + 1)}`;
    assert.deepEqual(verify(changed), { ok: false, reason: 'forged' });
  });

  test('a token signed with another secret under the same key id is forged', () => {
    const other = returnPath(
      { messageId: SEND_ID, recipient: 'a@b.c', domain: 'bounce.example.org', now: NOW },
      { current: 2, keys: [{ id: 2, secret: 'guessed' }] },
    );
    assert.deepEqual(verify(other), { ok: false, reason: 'forged' });
  });

  test('keys rotate: old tokens verify while their key is kept, and fail as unknown once it is dropped', () => {
    const old = build();
    const rotated: VerpKeyring = {
      current: 3,
      keys: [
        { id: 3, secret: 'secret-three' },
        { id: 2, secret: 'secret-two' },
      ],
    };
    const fresh = returnPath(
      { messageId: SEND_ID, recipient: 'a@b.c', domain: 'bounce.example.org', now: NOW },
      rotated,
    );
    assert.ok(verify(old, rotated.keys).ok);
    assert.equal(verify(fresh, rotated.keys).ok, true);
    assert.deepEqual(verify(old, [{ id: 3, secret: 'secret-three' }]), { ok: false, reason: 'unknown-key' });
  });

  test('refuses tokens older than the maximum age, or issued in the future', () => {
    const address = build();
    assert.ok(verify(address, KEYRING.keys, NOW + 29 * DAY).ok);
    assert.deepEqual(verify(address, KEYRING.keys, NOW + 31 * DAY), { ok: false, reason: 'too-old' });
    assert.deepEqual(verify(address, KEYRING.keys, NOW - DAY), { ok: false, reason: 'from-the-future' });
  });

  test('malformed and foreign addresses are told apart', () => {
    assert.deepEqual(verify('postmaster@bounce.example.org'), { ok: false, reason: 'malformed' });
    assert.deepEqual(verify('bounces+not-base32!@bounce.example.org'), { ok: false, reason: 'malformed' });
    assert.deepEqual(verify('bounces+abc@bounce.example.org'), { ok: false, reason: 'malformed' });
    assert.deepEqual(verify('no-at-sign'), { ok: false, reason: 'malformed' });
    assert.deepEqual(verify(build().replace('bounce.example.org', 'elsewhere.example')), {
      ok: false,
      reason: 'foreign-domain',
    });
  });

  test('address hashes ignore case and surrounding space', () => {
    assert.equal(addressHash(' Alice@Example.COM '), addressHash('alice@example.com'));
    assert.match(addressHash('alice@example.com'), /^[0-9a-f]{64}$/);
  });
});

describe('VERP key ring from configuration', () => {
  const secret = (fill: number) => Buffer.alloc(32, fill).toString('base64');

  test('the first key signs and every listed key verifies', () => {
    const ring = parseVerpKeyring(`3:${secret(1)}, 1:${secret(2)}`);
    assert.equal(ring.current, 3);
    const old = returnPath(
      { messageId: SEND_ID, recipient: 'a@example.org', domain: 'b.example.org', now: NOW },
      { current: 1, keys: ring.keys },
    );
    const checked = verifyReturnPath(old, ring.keys, { now: NOW, maxAgeMs: DAY });
    assert.equal(checked.ok && checked.fields.keyId, 1);
  });

  test('every problem is named at once and no secret is echoed', () => {
    const short = Buffer.from('too-short-secret').toString('base64');
    assert.throws(
      () => parseVerpKeyring(`16:${secret(1)},2:${short},nonsense,2:${secret(3)}`),
      (error: Error) =>
        error.message.includes('entry 1') &&
        error.message.includes('key 2: secret must be at least 32 bytes, got 16') &&
        error.message.includes('entry 3') &&
        error.message.includes('key 2: listed twice') &&
        !error.message.includes(short),
    );
    assert.throws(() => parseVerpKeyring(' , '), /no keys/);
  });
});
