/**
 * The router's schema upgraded in place: people materialized before a migration still route as
 * they did after it, without a rebuild.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { DEFAULT_DATABASE_URL } from '../../libs/config/common.ts';
import { migrate } from '../../libs/db/migrate.ts';
import { createPool } from '../../libs/db/pool.ts';
import { createRouterStore } from '../../services/router/store.ts';
import { quietLog } from './harness.ts';

const MIGRATIONS = join(import.meta.dirname, '..', '..', 'services', 'router', 'migrations');
const schema = `router_upgrade_${randomBytes(4).toString('hex')}`;
const pool = createPool({ url: DEFAULT_DATABASE_URL, schema, applicationName: 'router-migrations-test' });

after(async () => {
  await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await pool.end();
});

test('preferences stored in their own table before 0003 are the person’s preferences after it', async () => {
  const before = await mkdtemp(join(tmpdir(), 'router-migrations-'));
  try {
    for (const file of ['0001_init.sql', '0002_convergence.sql']) {
      await copyFile(join(MIGRATIONS, file), join(before, file));
    }
    await migrate(pool, { schema, dir: before, log: quietLog });
  } finally {
    await rm(before, { recursive: true, force: true });
  }
  await pool.query(`
    INSERT INTO users (user_id, email, locale, timezone, email_frequency, record_dt, record_id)
    VALUES ('ana', 'ana@example.org', 'pt', 'UTC', 'instant', now(), 'a'),
           ('ben', 'ben@example.org', 'en', 'UTC', 'daily', now(), 'b');
    INSERT INTO user_preferences (user_id, category, channel, enabled)
    VALUES ('ana', 'mention', 'email', false), ('ana', 'reverted', 'web', true);
  `);

  assert.deepEqual(await migrate(pool, { schema, dir: MIGRATIONS, log: quietLog }), [
    '0003_preferences_in_row',
  ]);

  const { recipients } = await createRouterStore(pool).loadBatch({
    eventIds: [],
    recipientIds: ['ana', 'ben'],
    throttleKeys: [],
    typeVolumeKeys: [],
  });
  const byCategory = (a: { category: string }, b: { category: string }) =>
    a.category.localeCompare(b.category);
  assert.deepEqual([...(recipients.get('ana')?.preferences ?? [])].sort(byCategory), [
    { category: 'mention', channel: 'email', enabled: false },
    { category: 'reverted', channel: 'web', enabled: true },
  ]);
  assert.deepEqual(recipients.get('ben')?.preferences, []);
});
