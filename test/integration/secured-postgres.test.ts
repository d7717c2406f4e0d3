/**
 * Postgres over TLS, as DATABASE_SSL_MODE and DATABASE_SSL_CA_FILE configure a service's pool. The
 * shared server has TLS off and is not ours to reconfigure, so the test runs a private, throwaway
 * server (initdb as the postgres user, on a port from the kernel) with ssl=on and the certificate
 * the stack scripts made for 127.0.0.1 (signed by the stack's CA in .data/security).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chownSync, copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { commonRules, commonSpec } from '../../libs/config/common.ts';
import { databaseTls } from '../../libs/config/connectivity.ts';
import { loadConfig } from '../../libs/config/load.ts';
import { createPool } from '../../libs/db/pool.ts';
import { eventually, freePort } from './harness.ts';

const REPO = join(import.meta.dirname, '..', '..');
const SECURITY_DIR = join(process.env.TIDINGS_DATA_DIR ?? join(REPO, '.data'), 'security');
const PG_ROOT = '/usr/lib/postgresql';
const bin = existsSync(PG_ROOT)
  ? readdirSync(PG_ROOT)
      .map((version) => join(PG_ROOT, version, 'bin'))
      .find((dir) => existsSync(join(dir, 'initdb')))
  : undefined;
// Postgres refuses to run as root; the test starts it as the postgres user, which needs root.
const skip =
  bin === undefined
    ? 'no PostgreSQL server binaries under /usr/lib/postgresql'
    : process.getuid?.() !== 0
      ? 'running a private server as user postgres needs root'
      : false;

describe('Postgres over TLS', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'tidings-pg-tls-'));
  let server: ChildProcess | undefined;
  let url = '';

  before(async () => {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }));
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }));
    chownSync(dir, uid, gid);
    const asPostgres = (args: string[]) => ['-u', 'postgres', '--', ...args];
    execFileSync(
      'runuser',
      asPostgres([join(bin!, 'initdb'), '-D', join(dir, 'data'), '-U', 'postgres', '--auth=trust']),
      {
        stdio: 'ignore',
      },
    );
    for (const [from, to] of [
      ['broker.crt', 'server.crt'],
      ['broker.key', 'server.key'],
    ] as const) {
      copyFileSync(join(SECURITY_DIR, from), join(dir, to));
      chownSync(join(dir, to), uid, gid);
    }
    const port = await freePort();
    server = spawn(
      'runuser',
      asPostgres([
        join(bin!, 'postgres'),
        '-D',
        join(dir, 'data'),
        '-p',
        String(port),
        '-k',
        dir,
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'ssl=on',
        '-c',
        `ssl_cert_file=${join(dir, 'server.crt')}`,
        '-c',
        `ssl_key_file=${join(dir, 'server.key')}`,
      ]),
      { stdio: 'ignore' },
    );
    url = `postgres://postgres@127.0.0.1:${port}/postgres`;
    await eventually(() => {
      try {
        execFileSync(join(bin!, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
        return true;
      } catch {
        return undefined;
      }
    }, 'the private Postgres to accept connections');
  });

  after(async () => {
    if (server && server.exitCode === null) {
      server.kill('SIGTERM');
      await once(server, 'exit');
    }
    rmSync(dir, { recursive: true, force: true });
  });

  /** Whether the pool a service would build from `env` reaches the server over TLS. */
  async function encrypted(env: Record<string, string>): Promise<boolean> {
    const config = loadConfig(
      commonSpec(env, { httpPort: 9100 }),
      { DATABASE_URL: url, ...env },
      { rules: commonRules },
    );
    const pool = createPool({
      url: config.DATABASE_URL,
      schema: 'public',
      applicationName: 'tls-test',
      ssl: databaseTls(config),
    });
    try {
      const { rows } = await pool.query<{ ssl: boolean }>(
        'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
      );
      return rows[0]?.ssl ?? false;
    } finally {
      await pool.end();
    }
  }

  test('verify-full with the CA connects over TLS; disable does not', async () => {
    assert.equal(
      await encrypted({
        DATABASE_SSL_MODE: 'verify-full',
        DATABASE_SSL_CA_FILE: join(SECURITY_DIR, 'ca.crt'),
      }),
      true,
    );
    assert.equal(await encrypted({ DATABASE_SSL_MODE: 'require' }), true);
    assert.equal(await encrypted({ DATABASE_SSL_MODE: 'disable' }), false);
  });

  test('verify-full without the CA that signed the server refuses to connect', async () => {
    await assert.rejects(
      encrypted({ DATABASE_SSL_MODE: 'verify-full' }),
      /unable to verify the first certificate/,
    );
  });
});
