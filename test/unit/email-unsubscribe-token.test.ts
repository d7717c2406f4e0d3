import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  listUnsubscribeHeaders,
  parseKeyRing,
  signUnsubscribeToken,
  type UnsubscribeClaims,
  type UnsubscribeKeyRing,
  verifyUnsubscribeToken,
} from '../../services/email/unsubscribe-token.ts';

const NOW = Date.UTC(2026, 10, 21, 12);
const DAY = 86_400_000;
const secret = () => randomBytes(32).toString('base64');
const ring = (spec: string) => parseKeyRing(spec);

const claims: UnsubscribeClaims = {
  userId: 'u1',
  categories: ['edit-user-talk'],
  channel: 'email',
  expiresAt: NOW + 60 * DAY,
};

describe('unsubscribe tokens', () => {
  const keys = ring(`k2:${secret()},k1:${secret()}`);

  test('a signed token verifies and gives back who and what to unsubscribe', () => {
    const token = signUnsubscribeToken(keys, claims);
    assert.match(token, /^k2\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    assert.deepEqual(verifyUnsubscribeToken(keys, token, NOW), { ok: true, claims });
  });

  test('"all categories" survives the round trip as null', () => {
    const all = { ...claims, categories: null };
    assert.deepEqual(verifyUnsubscribeToken(keys, signUnsubscribeToken(keys, all), NOW), {
      ok: true,
      claims: all,
    });
  });

  test('a token naming several categories gives back every one of them', () => {
    const mixed = { ...claims, categories: ['edit-user-talk', 'mention'] };
    assert.deepEqual(verifyUnsubscribeToken(keys, signUnsubscribeToken(keys, mixed), NOW), {
      ok: true,
      claims: mixed,
    });
  });

  test('a token signed when tokens named one category as a string still verifies, as that category', () => {
    const body = Buffer.from(
      JSON.stringify({ u: 'u1', c: 'edit-user-talk', ch: 'email', exp: claims.expiresAt }),
    ).toString('base64url');
    const sig = createHmac('sha256', keys.keys.get('k2')!).update(`k2.${body}`).digest('base64url');
    assert.deepEqual(verifyUnsubscribeToken(keys, `k2.${body}.${sig}`, NOW), { ok: true, claims });
  });

  test('a token whose claims were changed is refused', () => {
    const [kid, , sig] = signUnsubscribeToken(keys, claims).split('.');
    const forged = Buffer.from(JSON.stringify({ u: 'u2', c: null, ch: 'email', exp: NOW + DAY })).toString(
      'base64url',
    );
    assert.deepEqual(verifyUnsubscribeToken(keys, `${kid}.${forged}.${sig}`, NOW), {
      ok: false,
      reason: 'bad-signature',
    });
  });

  test('a token with a flipped signature character is refused', () => {
    const token = signUnsubscribeToken(keys, claims);
    const last = token.at(-2) === 'A' ? 'B' : 'A';
    const tampered = `${token.slice(0, -2)}${last}${token.at(-1)}`;
    assert.deepEqual(verifyUnsubscribeToken(keys, tampered, NOW), { ok: false, reason: 'bad-signature' });
  });

  test('a token signed with another secret under the same key id is refused', () => {
    const other = ring(`k2:${secret()}`);
    assert.deepEqual(verifyUnsubscribeToken(keys, signUnsubscribeToken(other, claims), NOW), {
      ok: false,
      reason: 'bad-signature',
    });
  });

  test('an expired token is refused, a valid one up to its expiry', () => {
    const token = signUnsubscribeToken(keys, claims);
    assert.equal(verifyUnsubscribeToken(keys, token, claims.expiresAt - 1).ok, true);
    assert.deepEqual(verifyUnsubscribeToken(keys, token, claims.expiresAt), { ok: false, reason: 'expired' });
  });

  test('after rotation, tokens of the old key still verify; tokens of a retired key do not', () => {
    const old = ring(`k1:${secret()}`);
    const rotated: UnsubscribeKeyRing = {
      signingKeyId: 'k2',
      keys: new Map([...keys.keys].map(([id, key]) => [id, id === 'k1' ? old.keys.get('k1')! : key])),
    };
    const oldToken = signUnsubscribeToken(old, claims);
    assert.equal(verifyUnsubscribeToken(rotated, oldToken, NOW).ok, true);
    const retired: UnsubscribeKeyRing = {
      signingKeyId: 'k2',
      keys: new Map([['k2', rotated.keys.get('k2')!]]),
    };
    assert.deepEqual(verifyUnsubscribeToken(retired, oldToken, NOW), { ok: false, reason: 'unknown-key' });
  });

  test('a token with characters appended, padding or a non-canonical last character is refused', () => {
    const token = signUnsubscribeToken(keys, claims);
    assert.equal(verifyUnsubscribeToken(keys, token, NOW).ok, true);
    const [kid, body, sig] = token.split('.') as [string, string, string];
    // The last of 43 characters carries 4 bits; the others of its group decode to the same bytes.
    const last = 'AEIMQUYcgkosw048'.indexOf(sig.at(-1)!);
    const sibling = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'[last * 4 + 1]!;
    for (const variant of [
      `${token}=`,
      `${token}!!`,
      `${token} `,
      `${kid}.${body}=.${sig}`,
      `${kid}.${body}.${sig.slice(0, -1)}${sibling}`,
      `${kid}.${body}.!${sig}`,
    ]) {
      assert.deepEqual(
        verifyUnsubscribeToken(keys, variant, NOW),
        { ok: false, reason: 'malformed' },
        variant,
      );
    }
  });

  test('garbage is refused as malformed', () => {
    for (const token of ['', 'abc', 'a.b', 'a.b.c.d']) {
      assert.deepEqual(verifyUnsubscribeToken(keys, token, NOW), { ok: false, reason: 'malformed' });
    }
  });
});

describe('key ring configuration', () => {
  test('the first key signs; all verify', () => {
    const parsed = ring(`new:${secret()}, old:${secret()}`);
    assert.equal(parsed.signingKeyId, 'new');
    assert.deepEqual([...parsed.keys.keys()], ['new', 'old']);
  });

  test('short secrets, bad ids, duplicates and an empty ring are refused without echoing secrets', () => {
    const short = Buffer.from('too-short').toString('base64');
    assert.throws(() => ring(`k1:${short}`), /k1: secret must be at least 32 bytes/);
    assert.throws(() => ring(`bad.id:${secret()}`), /entry 1/);
    assert.throws(() => ring(`k1:${secret()},k1:${secret()}`), /k1: listed twice/);
    assert.throws(() => ring(''), /no keys/);
    assert.throws(
      () => ring(`k1:${short}`),
      (err: Error) => !err.message.includes(short),
    );
  });
});

describe('List-Unsubscribe headers', () => {
  test('one-click https URL carrying the token, POST marker, optional mailto', () => {
    const headers = listUnsubscribeHeaders({
      endpoint: 'https://mail.example.org/unsubscribe',
      token: 'k1.abc.def',
      mailto: 'unsubscribe@mail.example.org',
    });
    assert.deepEqual(headers, {
      'List-Unsubscribe':
        '<https://mail.example.org/unsubscribe?token=k1.abc.def>, <mailto:unsubscribe@mail.example.org?subject=unsubscribe%20k1.abc.def>',
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
    });
  });

  test('plain http is refused except on loopback for development', () => {
    assert.throws(
      () => listUnsubscribeHeaders({ endpoint: 'http://mail.example.org/u', token: 't' }),
      /must be https/,
    );
    const dev = listUnsubscribeHeaders({ endpoint: 'http://127.0.0.1:9102/unsubscribe', token: 't' });
    assert.equal(dev['List-Unsubscribe'], '<http://127.0.0.1:9102/unsubscribe?token=t>');
  });

  test('a mailto that could smuggle header text is refused', () => {
    assert.throws(
      () =>
        listUnsubscribeHeaders({ endpoint: 'https://x.example/u', token: 't', mailto: 'a@b\r\nBcc: c@d' }),
      /plain address/,
    );
  });
});
