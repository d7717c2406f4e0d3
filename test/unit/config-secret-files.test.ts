/**
 * NAME_FILE for every secret variable (mounted secrets), and file variables that must be readable
 * at start-up: problems name the variable to fix and never echo the secret.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { acceptedVariables, ConfigError, describeConfig, loadConfig } from '../../libs/config/load.ts';
import { file, list, str, url } from '../../libs/config/vars.ts';

const dir = mkdtempSync(join(tmpdir(), 'tidings-secret-files-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

const spec = {
  DATABASE_URL: url({ protocols: ['postgres'], secret: true, default: 'postgres://localhost/x' }),
  WEBHOOK_SECRETS: list({ secret: true, optional: true }),
  ADMIN_TOKEN: str({ secret: true }),
  SERVICE_NAME: str({ default: 'svc' }),
  CA_FILE: file({
    optional: true,
    contains: /-----BEGIN CERTIFICATE-----/,
    expect: 'a PEM CA certificate file',
  }),
};

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(spec, env);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.problems.map((p) => p.message);
  }
  assert.fail('expected a ConfigError');
}

test('a secret variable is read from the file NAME_FILE names, without its trailing newline', () => {
  const config = loadConfig(spec, {
    DATABASE_URL_FILE: write('db-url', 'postgres://app:s3cret@db.internal/tidings\n'),
    WEBHOOK_SECRETS_FILE: write('webhook', 'one,two\n'),
    ADMIN_TOKEN_FILE: write('token', 'tok-123'),
  });
  assert.equal(config.DATABASE_URL, 'postgres://app:s3cret@db.internal/tidings');
  assert.deepEqual(config.WEBHOOK_SECRETS, ['one', 'two']);
  assert.equal(config.ADMIN_TOKEN, 'tok-123');
  const shown = JSON.stringify(describeConfig(spec, config));
  assert.doesNotMatch(shown, /s3cret|tok-123|one,two/);
});

test('only secret variables have a _FILE variant', () => {
  const config = loadConfig(spec, { ADMIN_TOKEN: 't', SERVICE_NAME_FILE: write('name', 'other') });
  assert.equal(config.SERVICE_NAME, 'svc');
  assert.deepEqual(acceptedVariables(spec), [
    'DATABASE_URL',
    'DATABASE_URL_FILE',
    'WEBHOOK_SECRETS',
    'WEBHOOK_SECRETS_FILE',
    'ADMIN_TOKEN',
    'ADMIN_TOKEN_FILE',
    'SERVICE_NAME',
    'CA_FILE',
  ]);
});

test('both NAME and NAME_FILE, a missing or empty file: each is a problem naming the variable', () => {
  const found = problems({
    ADMIN_TOKEN: 'inline',
    ADMIN_TOKEN_FILE: write('token2', 'from-file'),
    DATABASE_URL_FILE: join(dir, 'not-mounted'),
    WEBHOOK_SECRETS_FILE: write('empty', '\n'),
  });
  assert.deepEqual(found, [
    `DATABASE_URL_FILE: cannot read ${JSON.stringify(join(dir, 'not-mounted'))} (ENOENT); mount the secret there or unset DATABASE_URL_FILE`,
    `WEBHOOK_SECRETS_FILE: ${JSON.stringify(join(dir, 'empty'))} is empty; write the value of WEBHOOK_SECRETS into it`,
    'ADMIN_TOKEN: set either ADMIN_TOKEN or ADMIN_TOKEN_FILE, not both',
  ]);
});

test('an invalid value from a file is reported against NAME_FILE, masked', () => {
  const found = problems({ ADMIN_TOKEN: 't', DATABASE_URL_FILE: write('bad-url', 'mysql://root:pw@db/x') });
  assert.equal(found.length, 1);
  assert.match(found[0]!, /^DATABASE_URL_FILE: "mysql:\/\/root:\*\*\*@db\/x" is not a postgres URL/);
  assert.doesNotMatch(found[0]!, /:pw@/);
});

test('an unset required secret says it may come from a file', () => {
  assert.deepEqual(problems({}), [
    'ADMIN_TOKEN: not set; set it (or ADMIN_TOKEN_FILE) to a non-empty string',
  ]);
});

test('a file variable is read at load, checked for what it must hold, and shown as its path', () => {
  const pem = write('ca.crt', '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
  const config = loadConfig(spec, { ADMIN_TOKEN: 't', CA_FILE: pem });
  assert.equal(config.CA_FILE?.path, pem);
  assert.match(config.CA_FILE?.text ?? '', /MIIB/);
  assert.equal(describeConfig(spec, config).CA_FILE, pem);

  const notPem = write('not-pem', 'hello');
  assert.deepEqual(problems({ ADMIN_TOKEN: 't', CA_FILE: notPem }), [
    `CA_FILE: ${JSON.stringify(notPem)} does not hold a PEM CA certificate file; set the path of a PEM CA certificate file`,
  ]);
  assert.deepEqual(problems({ ADMIN_TOKEN: 't', CA_FILE: join(dir, 'missing.crt') }), [
    `CA_FILE: ${JSON.stringify(join(dir, 'missing.crt'))} cannot be read (ENOENT); set the path of a PEM CA certificate file`,
  ]);
});
