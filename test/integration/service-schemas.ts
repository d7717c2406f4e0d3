/**
 * For tests that run a service's stores or handlers in-process: a Postgres schema of the test's
 * own, migrated with the service's migrations, and a publisher per datacenter, each writing its
 * own prefix on its own cluster (what upstream apps in eqiad and codfw do).
 */
import { join } from 'node:path';
import type pg from 'pg';
import { DEFAULT_DATABASE_URL } from '../../libs/config/common.ts';
import { migrate } from '../../libs/db/migrate.ts';
import { createPool } from '../../libs/db/pool.ts';
import { createPublisher, type Publisher } from '../../libs/publish/publish.ts';
import { BROKERS, quietLog, REGISTRY_URL } from './harness.ts';

const DATABASE_URL = process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL;
const created: { pool: pg.Pool; schema: string }[] = [];

/** `schema` must be unique to the run (e.g. with uniqueDc() in it). */
export async function serviceSchema(service: string, schema: string): Promise<pg.Pool> {
  const pool = createPool({ url: DATABASE_URL, schema, applicationName: `${service}-test`, max: 4 });
  await migrate(pool, {
    schema,
    dir: join(import.meta.dirname, '..', '..', 'services', service, 'migrations'),
    log: quietLog,
  });
  created.push({ pool, schema });
  return pool;
}

/** Drops every schema serviceSchema created, and closes their pools. */
export async function dropServiceSchemas(): Promise<void> {
  for (const { pool, schema } of created.splice(0)) {
    await pool.query(`DROP SCHEMA ${schema} CASCADE`);
    await pool.end();
  }
}

export function publishersPerDc(producer: string): Record<'eqiad' | 'codfw', Publisher> {
  const publisher = (dc: 'eqiad' | 'codfw') =>
    createPublisher({ brokers: BROKERS[dc], dc, registryUrl: REGISTRY_URL, producer });
  return { eqiad: publisher('eqiad'), codfw: publisher('codfw') };
}
