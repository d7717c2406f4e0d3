/**
 * A pg.Pool for one service schema. The search_path travels in the connection's start-up options,
 * so every connection lands in the schema without a per-query `SET` and a service's SQL names its
 * tables unqualified.
 */
import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import type { Logger } from 'pino';
import { assertSchemaName } from './schema-name.ts';

export interface PoolOptions {
  url: string;
  schema: string;
  /** Shows in pg_stat_activity, so a DBA can tell which service holds a connection. */
  applicationName: string;
  max?: number;
  /** TLS to the server (libs/config/connectivity.ts databaseTls); unset: as the URL says. */
  ssl?: boolean | ConnectionOptions;
  /**
   * Receives errors of idle connections (e.g. Postgres restarted). Without a listener pg lets
   * such an error crash the process.
   */
  log?: Logger;
}

/** pg lets `options` in the URL override the config object's, so fold the URL's in rather than lose ours. */
function connectionWithOptions(url: string, options: string): { connectionString: string; options: string } {
  const parsed = new URL(url);
  const fromUrl = parsed.searchParams.get('options');
  if (fromUrl === null) return { connectionString: url, options };
  parsed.searchParams.delete('options');
  return { connectionString: parsed.href, options: `${fromUrl} ${options}` };
}

export function createPool({ url, schema, applicationName, max = 10, ssl, log }: PoolOptions): pg.Pool {
  const searchPath = `-c search_path=${assertSchemaName(schema)}`;
  const pool = new pg.Pool({
    ...connectionWithOptions(url, searchPath),
    application_name: applicationName,
    max,
    ...(ssl === undefined ? {} : { ssl }),
  });
  if (log) pool.on('error', (err) => log.warn({ err }, 'idle database connection failed; it was discarded'));
  return pool;
}
