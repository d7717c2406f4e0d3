/**
 * migrate() and createPool() against the real Postgres. Each test gets a schema of its own in the
 * `tidings` database and drops it afterwards.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import pino from 'pino';
import { DEFAULT_DATABASE_URL } from '../../libs/config/common.ts';
import { migrate } from '../../libs/db/migrate.ts';
import { createPool } from '../../libs/db/pool.ts';

const DATABASE_URL = process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL;
const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

const pools: pg.Pool[] = [];
const schemas: string[] = [];
const dirs: string[] = [];

async function ensureDatabase(): Promise<void> {
  const url = new URL(DATABASE_URL);
  const database = url.pathname.slice(1);
  url.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: url.href });
  await admin.connect();
  try {
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (rowCount === 0) {
      // 42P04: another test run created it in the meantime.
      await admin.query(`CREATE DATABASE ${database}`).catch((err: pg.DatabaseError) => {
        if (err.code !== '42P04') throw err;
      });
    }
  } finally {
    await admin.end();
  }
}

function uniqueSchema(): string {
  const schema = `t_migrate_${randomBytes(4).toString('hex')}`;
  schemas.push(schema);
  return schema;
}

function pool(schema: string, url = DATABASE_URL): pg.Pool {
  const p = createPool({ url, schema, applicationName: 'tidings-db-migrate-test', max: 4, log });
  pools.push(p);
  return p;
}

async function migrations(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tidings-migrations-'));
  dirs.push(dir);
  for (const [name, sql] of Object.entries(files)) await writeFile(join(dir, name), sql);
  return dir;
}

const GOOD = {
  '0001_users.sql': 'CREATE TABLE users (id text PRIMARY KEY, email text NOT NULL);',
  '0002_prefs.sql':
    'CREATE TABLE prefs (user_id text REFERENCES users(id), category text, enabled boolean);\n' +
    "INSERT INTO users VALUES ('u1', 'u1@example.org');",
  '0010_index.sql': 'CREATE INDEX prefs_user ON prefs (user_id);',
  'README.md': 'not a migration',
};

async function tablesOf(p: pg.Pool, schema: string): Promise<string[]> {
  const { rows } = await p.query<{ table_name: string }>(
    'SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name',
    [schema],
  );
  return rows.map((r) => r.table_name);
}

before(ensureDatabase);

after(async () => {
  const admin = new pg.Pool({ connectionString: DATABASE_URL, max: 1 });
  for (const schema of schemas) await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await admin.end();
  await Promise.all(pools.map((p) => p.end()));
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

test('applies every migration in file-name order, then nothing on the next run', async () => {
  const schema = uniqueSchema();
  const p = pool(schema);
  const dir = await migrations(GOOD);

  assert.deepEqual(await migrate(p, { schema, dir, log }), ['0001_users', '0002_prefs', '0010_index']);
  assert.deepEqual(await tablesOf(p, schema), ['prefs', 'schema_migrations', 'users']);
  const { rows } = await p.query<{ version: string; applied_at: Date }>(
    'SELECT version, applied_at FROM schema_migrations ORDER BY version',
  );
  assert.deepEqual(
    rows.map((r) => r.version),
    ['0001_users', '0002_prefs', '0010_index'],
  );
  assert.ok(rows.every((r) => r.applied_at instanceof Date));

  assert.deepEqual(await migrate(p, { schema, dir, log }), []);

  await writeFile(join(dir, '0011_mutes.sql'), 'CREATE TABLE mutes (user_id text, muted text);');
  assert.deepEqual(await migrate(p, { schema, dir, log }), ['0011_mutes']);
});

test("the pool's connections see the schema's tables unqualified", async () => {
  const schema = uniqueSchema();
  const p = pool(schema);
  await migrate(p, { schema, dir: await migrations(GOOD), log });
  const clients = await Promise.all([p.connect(), p.connect(), p.connect()]);
  try {
    for (const client of clients) {
      const { rows } = await client.query<{ email: string }>("SELECT email FROM users WHERE id = 'u1'");
      assert.deepEqual(rows, [{ email: 'u1@example.org' }]);
    }
  } finally {
    for (const client of clients) client.release();
  }
  const { rows } = await p.query<{ application_name: string }>(
    'SELECT current_setting($1) AS application_name',
    ['application_name'],
  );
  assert.equal(rows[0]?.application_name, 'tidings-db-migrate-test');
});

test('keeps connection options given in the URL next to the search_path', async () => {
  const schema = uniqueSchema();
  const url = new URL(DATABASE_URL);
  url.searchParams.set('options', '-c statement_timeout=4321');
  const p = pool(schema, url.href);
  await migrate(p, { schema, dir: await migrations(GOOD), log });
  const { rows } = await p.query<{ timeout: string; n: string }>(
    "SELECT current_setting('statement_timeout') AS timeout, count(*) AS n FROM users",
  );
  assert.deepEqual(rows[0], { timeout: '4321ms', n: '1' });
});

test('a broken migration rolls back the earlier ones of the same run and names the file', async () => {
  const schema = uniqueSchema();
  const p = pool(schema);
  const first = await migrations({ '0001_users.sql': GOOD['0001_users.sql'] });
  assert.deepEqual(await migrate(p, { schema, dir: first, log }), ['0001_users']);

  const dir = await migrations({
    '0001_users.sql': GOOD['0001_users.sql'],
    '0002_prefs.sql': GOOD['0002_prefs.sql'],
    '0003_broken.sql': 'ALTER TABLE users ADD COLUMN locale text;\nSELEKT 1;',
    '0004_after.sql': 'CREATE TABLE after_broken (x int);',
  });
  await assert.rejects(migrate(p, { schema, dir, log }), (err: Error) => {
    assert.match(
      err.message,
      /^migration 0003_broken\.sql failed \(line 2\): syntax error at or near "SELEKT"/,
    );
    assert.match(err.message, /rolled back/);
    return true;
  });

  assert.deepEqual(await tablesOf(p, schema), ['schema_migrations', 'users']);
  const { rows: columns } = await p.query(
    "SELECT 1 FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'users' AND column_name = 'locale'",
    [schema],
  );
  assert.equal(columns.length, 0, 'the ALTER before the error in the same file is rolled back too');
  const { rows } = await p.query<{ version: string }>('SELECT version FROM schema_migrations');
  assert.deepEqual(
    rows.map((r) => r.version),
    ['0001_users'],
  );
});

test('a broken first run leaves no schema behind', async () => {
  const schema = uniqueSchema();
  const p = pool(schema);
  const dir = await migrations({ '0001_bad.sql': 'CREATE TABLE t (id nosuchtype);' });
  await assert.rejects(
    migrate(p, { schema, dir, log }),
    /migration 0001_bad\.sql failed.*type "nosuchtype" does not exist/,
  );
  const { rowCount } = await p.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
  assert.equal(rowCount, 0);
});

test('concurrent migrate() calls apply each file exactly once', async () => {
  const schema = uniqueSchema();
  const dir = await migrations({
    ...GOOD,
    // Without the lock both runs would insert; the primary key makes a double run fail loudly.
    '0020_slow.sql': "SELECT pg_sleep(0.2); INSERT INTO users VALUES ('u2', 'u2@example.org');",
  });
  const runs = await Promise.all(
    Array.from({ length: 4 }, () => migrate(pool(schema), { schema, dir, log })),
  );
  const all = runs.flat();
  assert.deepEqual(all.sort(), ['0001_users', '0002_prefs', '0010_index', '0020_slow']);
  assert.equal(
    runs.filter((r) => r.length > 0).length,
    1,
    'one instance applied everything, the others nothing',
  );
  const { rows } = await pools.at(-1)!.query<{ n: string }>('SELECT count(*) AS n FROM users');
  assert.equal(rows[0]?.n, '2');
});

test('refuses schema names that are not plain identifiers and misnamed migration files', async () => {
  const dir = await migrations(GOOD);
  for (const bad of ['Router', 'a-b', 'x; DROP SCHEMA public', '1abc', '', 'a'.repeat(64)]) {
    assert.throws(
      () => createPool({ url: DATABASE_URL, schema: bad, applicationName: 't' }),
      /not a plain identifier/,
    );
    await assert.rejects(migrate(pool('public'), { schema: bad, dir, log }), /not a plain identifier/);
  }
  const schema = uniqueSchema();
  const misnamed = await migrations({ '0001_users.sql': GOOD['0001_users.sql'], '2_more.sql': 'SELECT 1;' });
  await assert.rejects(
    migrate(pool(schema), { schema, dir: misnamed, log }),
    /2_more\.sql is not named NNNN_name\.sql/,
  );
  const duplicate = await migrations({ '0001_users.sql': 'SELECT 1;', '0001_other.sql': 'SELECT 1;' });
  await assert.rejects(migrate(pool(schema), { schema, dir: duplicate, log }), /share the number 0001/);
});
