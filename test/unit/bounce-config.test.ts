/**
 * bounce refuses to start with secrets short enough to guess: a one-character webhook secret was
 * accepted, and every signed request would have given it away to an offline search.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'node:test';

const MAIN = join(import.meta.dirname, '..', '..', 'services', 'bounce', 'main.ts');

function start(env: Record<string, string>) {
  const result = spawnSync(process.execPath, [MAIN], {
    env: {
      PATH: process.env.PATH ?? '',
      VERP_DOMAIN: 'bounce.example',
      VERP_KEYS: `1:${randomBytes(32).toString('base64')}`,
      ...env,
    },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

test('a webhook secret or operator token shorter than 32 characters stops start-up, naming it without echoing it', () => {
  const { status, output } = start({
    BOUNCE_WEBHOOK_SECRETS: `x,${'s'.repeat(40)}`,
    BOUNCE_ADMIN_TOKEN: 'sixteen-chars-ok',
  });
  assert.equal(status, 2, output);
  assert.match(output, /BOUNCE_WEBHOOK_SECRETS: secret 1 is shorter than 32 characters/);
  assert.match(output, /BOUNCE_ADMIN_TOKEN/);
  assert.doesNotMatch(output, /sixteen-chars-ok|"x"/);
});
