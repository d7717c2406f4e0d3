import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../../libs/config/load.ts';
import { digestSettings, digestSpec } from '../../services/email/digest-config.ts';

const KEY = `k1:${randomBytes(32).toString('base64')}`;

function settingsFor(env: Record<string, string>) {
  return digestSettings(loadConfig(digestSpec, env));
}

describe('digest side configuration', () => {
  test('defaults plus a key ring give a schedule at 08:00 and the signing key', () => {
    const settings = settingsFor({ EMAIL_UNSUBSCRIBE_KEYS: KEY });
    assert.deepEqual(settings.schedule, { hour: 8, weekday: 1, jitterMs: 3_600_000 });
    assert.equal(settings.keyRing.signingKeyId, 'k1');
  });

  test('a digest hour outside 0-23 is refused when the variables load', () => {
    assert.throws(
      () => loadConfig(digestSpec, { EMAIL_DIGEST_HOUR: '24' }),
      (error: unknown) => error instanceof ConfigError && /EMAIL_DIGEST_HOUR/.test(error.message),
    );
  });

  test('every problem is named at once, with how to fix it and without the secret', () => {
    const secret = randomBytes(8).toString('base64');
    assert.throws(
      () =>
        settingsFor({
          EMAIL_UNSUBSCRIBE_KEYS: `k1:${secret}`,
          EMAIL_UNSUBSCRIBE_URL: 'http://mail.example.org/unsubscribe',
        }),
      (error: Error) => {
        assert.match(error.message, /EMAIL_UNSUBSCRIBE_KEYS: .*at least 32 bytes, got 8/);
        assert.match(error.message, /EMAIL_UNSUBSCRIBE_URL: .*must be https/);
        assert.doesNotMatch(error.message, new RegExp(secret.replace(/[+/=]/g, '.')));
        return true;
      },
    );
  });

  test('without keys the digest side says how to make one', () => {
    assert.throws(() => settingsFor({}), /EMAIL_UNSUBSCRIBE_KEYS: required .*openssl rand -base64 32/);
  });

  test('plain http is accepted for a loopback endpoint (development)', () => {
    const settings = settingsFor({
      EMAIL_UNSUBSCRIBE_KEYS: KEY,
      EMAIL_UNSUBSCRIBE_URL: 'http://127.0.0.1:8102/unsubscribe',
    });
    assert.equal(settings.keyRing.keys.size, 1);
  });
});
