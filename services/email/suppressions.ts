/**
 * The sender's copy of notify.suppression (compacted, keyed by address hash): the latest record
 * per address wins, a tombstone lifts the suppression, and one whose `until` has passed no longer
 * applies.
 */
import type pg from 'pg';
import type { NotifySuppression } from '../../libs/schemas/types.generated.ts';

export async function upsertSuppression(db: pg.Pool, s: NotifySuppression): Promise<void> {
  await db.query(
    `INSERT INTO suppressions (address_hash, reason, until, detail, updated_at)
     VALUES ($1, $2, CASE WHEN $3::bigint IS NULL THEN NULL ELSE to_timestamp($3::bigint / 1000.0) END, $4, now())
     ON CONFLICT (address_hash) DO UPDATE
       SET reason = EXCLUDED.reason, until = EXCLUDED.until, detail = EXCLUDED.detail, updated_at = now()`,
    [s.address_hash, s.reason, s.until, s.detail],
  );
}

export async function liftSuppression(db: pg.Pool, addressHash: string): Promise<void> {
  await db.query('DELETE FROM suppressions WHERE address_hash = $1', [addressHash]);
}

/** Which of these address hashes are suppressed now. */
export async function suppressedAmong(db: pg.Pool, addressHashes: readonly string[]): Promise<Set<string>> {
  if (addressHashes.length === 0) return new Set();
  const { rows } = await db.query<{ address_hash: string }>(
    'SELECT address_hash FROM suppressions WHERE address_hash = ANY($1) AND (until IS NULL OR until > now())',
    [addressHashes],
  );
  return new Set(rows.map((r) => r.address_hash));
}
