/**
 * Forward-only SQL migrations of one service schema, run by the service at start-up.
 *
 * Every `NNNN_name.sql` file in the folder that `<schema>.schema_migrations` does not list yet is
 * applied in file-name order, all in ONE transaction: a run either applies every pending file or
 * none, so a broken migration never leaves a half-migrated schema behind. Instances starting
 * together serialize on an advisory lock keyed on the schema; the second finds nothing to do.
 *
 * Files run with search_path set to the schema, so they name tables unqualified. They must not
 * contain transaction control (COMMIT would end the shared transaction) nor statements that cannot
 * run in a transaction (CREATE INDEX CONCURRENTLY).
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import type { Logger } from 'pino';
import { assertSchemaName } from './schema-name.ts';

export interface MigrateOptions {
  schema: string;
  /** Folder holding the NNNN_name.sql files. */
  dir: string;
  log: Logger;
}

interface MigrationFile {
  /** The file name without `.sql`, e.g. `0001_init`; what schema_migrations records. */
  version: string;
  file: string;
}

const MIGRATION_FILE = /^(\d{4})_[A-Za-z0-9_-]+\.sql$/;

/** The migrations of `dir` in apply order; a misnamed or duplicate-numbered .sql file is an error, not a skip. */
async function listMigrations(dir: string): Promise<MigrationFile[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort();
  const byNumber = new Map<string, string>();
  for (const file of files) {
    const number = MIGRATION_FILE.exec(file)?.[1];
    if (number === undefined) throw new Error(`migration file ${join(dir, file)} is not named NNNN_name.sql`);
    const other = byNumber.get(number);
    if (other) throw new Error(`migrations ${other} and ${file} in ${dir} share the number ${number}`);
    byNumber.set(number, file);
  }
  return files.map((file) => ({ file, version: file.slice(0, -'.sql'.length) }));
}

/** Names the failing file and where in it Postgres stopped. */
function migrationError(file: string, sql: string, err: pg.DatabaseError): Error {
  const offset = Number(err.position);
  const line = offset > 0 ? ` (line ${sql.slice(0, offset - 1).split('\n').length})` : '';
  const detail = err.detail ? `; ${err.detail}` : '';
  return new Error(
    `migration ${file} failed${line}: ${err.message}${detail}; rolled back every migration of this run`,
    { cause: err },
  );
}

/** Applies pending migrations and returns their versions in order (empty when up to date). */
export async function migrate(pool: pg.Pool, { schema, dir, log }: MigrateOptions): Promise<string[]> {
  assertSchemaName(schema);
  const migrations = await listMigrations(dir);
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query('BEGIN');
    try {
      await client.query("SELECT pg_advisory_xact_lock(hashtext('tidings.migrate'), hashtext($1))", [schema]);
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${schema}.schema_migrations (
           version text PRIMARY KEY,
           applied_at timestamptz NOT NULL DEFAULT now()
         )`,
      );
      await client.query(`SET LOCAL search_path TO ${schema}`);
      const { rows } = await client.query<{ version: string }>('SELECT version FROM schema_migrations');
      const done = new Set(rows.map((r) => r.version));

      const applied: string[] = [];
      for (const { file, version } of migrations) {
        if (done.has(version)) continue;
        const sql = await readFile(join(dir, file), 'utf8');
        try {
          await client.query(sql);
        } catch (err) {
          throw migrationError(file, sql, err as pg.DatabaseError);
        }
        await client.query('INSERT INTO schema_migrations (version) VALUES ($1)', [version]);
        applied.push(version);
      }
      await client.query('COMMIT');
      if (applied.length > 0) log.info({ schema, applied }, 'database migrations applied');
      else log.debug({ schema }, 'database schema up to date');
      return applied;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw err;
    }
  } finally {
    // A connection that could not roll back is in an unknown state: destroy it rather than pool it.
    client.release(broken);
  }
}
