/** Inbox tokens: who the inbox believes a caller is, and every way a token is refused. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { SignJWT } from 'jose';
import {
  parseTokenKeyRing,
  signInboxToken,
  TOKEN_AUDIENCE,
  verifyInboxToken,
} from '../../services/inbox/token.ts';

const secret = () => randomBytes(32).toString('base64');
const ring = parseTokenKeyRing(`new:${secret()},old:${secret()}`);
const oldOnly = parseTokenKeyRing(`old:${ring.byId.get('old')?.secret.toString('base64')}`);
const now = Date.UTC(2026, 11, 1, 9, 0);
const verify = (token: string | undefined, r = ring) =>
  verifyInboxToken(r, token, { maxTtlMs: 3_600_000, now });

test('a token signed with the ring names its person; one signed with an older key still verifies', async () => {
  assert.deepEqual(await verify(await signInboxToken(ring, 'u1', { ttlMs: 600_000, now })), {
    ok: true,
    userId: 'u1',
  });
  assert.deepEqual(await verify(await signInboxToken(oldOnly, 'u2', { ttlMs: 600_000, now })), {
    ok: true,
    userId: 'u2',
  });
});

test('missing, forged, expired, over-long, unknown-key, alg-none and wrong-audience tokens are refused', async () => {
  const reason = async (token: string | undefined) => {
    const check = await verify(token);
    return check.ok ? 'accepted' : check.reason;
  };
  assert.equal(await reason(undefined), 'missing');
  assert.equal(await reason('not.a.jwt'), 'malformed');
  assert.equal(await reason('x'.repeat(5_000)), 'malformed');
  const forged = await new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', kid: 'new' })
    .setSubject('u1')
    .setAudience(TOKEN_AUDIENCE)
    .setIssuedAt(now / 1000)
    .setExpirationTime(now / 1000 + 60)
    .sign(randomBytes(32));
  assert.equal(await reason(forged), 'bad-signature');
  assert.equal(
    await reason(await signInboxToken(ring, 'u1', { ttlMs: 60_000, now: now - 120_000 })),
    'expired',
  );
  assert.equal(await reason(await signInboxToken(ring, 'u1', { ttlMs: 2 * 3_600_000, now })), 'too-long');
  const stranger = parseTokenKeyRing(`other:${secret()}`);
  assert.equal(await reason(await signInboxToken(stranger, 'u1', { ttlMs: 60_000, now })), 'unknown-key');
  const [, body] = (await signInboxToken(ring, 'u1', { ttlMs: 60_000, now })).split('.');
  const none = `${Buffer.from(JSON.stringify({ alg: 'none', kid: 'new' })).toString('base64url')}.${body}.`;
  assert.equal(await reason(none), 'malformed');
  const elsewhere = await new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', kid: 'new' })
    .setSubject('u1')
    .setAudience('another-app')
    .setIssuedAt(now / 1000)
    .setExpirationTime(now / 1000 + 60)
    .sign(ring.signing.secret);
  assert.equal(await reason(elsewhere), 'malformed');
});

test('a key ring with a short secret or no keys is refused at start-up, without echoing secrets', () => {
  assert.throws(
    () => parseTokenKeyRing('k1:c2hvcnQ='),
    /inbox token key ring: key k1: secret must be at least 32 bytes/,
  );
  assert.throws(() => parseTokenKeyRing(''), /no keys/);
});
