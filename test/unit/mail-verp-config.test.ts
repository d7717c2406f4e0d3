/**
 * The VERP settings, declared once in libs/mail for the email sender and the bounce receiver, are
 * checked at start-up on both sides: a missing or unreadable key ring stops the process (exit 2)
 * naming the variable, instead of failing at the first send or the first bounce.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';

const services = join(import.meta.dirname, '..', '..', 'services');

function start(service: 'email' | 'bounce', env: Record<string, string>) {
  const result = spawnSync(process.execPath, [join(services, service, 'main.ts')], {
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

test('the email sender side without VERP settings stops at start-up naming both', () => {
  const { status, output } = start('email', { EMAIL_SIDES: 'sender' });
  assert.equal(status, 2, output);
  assert.match(output, /VERP_DOMAIN: the sender side needs both/);
});

test('a key ring that does not parse stops the sender and the receiver alike, naming VERP_KEYS', () => {
  for (const service of ['email', 'bounce'] as const) {
    const { status, output } = start(service, {
      EMAIL_SIDES: 'sender',
      VERP_DOMAIN: 'bounces.example.org',
      VERP_KEYS: 'not-a-key-ring',
    });
    assert.equal(status, 2, `${service}: ${output}`);
    assert.match(output, /VERP_KEYS: /, service);
    assert.doesNotMatch(output, /not-a-key-ring/, `${service} does not echo the secret`);
  }
});
