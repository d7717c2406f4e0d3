/**
 * The sender's copy of notify.suppression (compacted, keyed by address hash): the newest record per
 * address wins by event time (libs/convergence/version.ts), whatever order records arrive in; a
 * tombstone lifts the suppression and leaves a marker (migrations/0003); one whose `until` has
 * passed no longer applies.
 */
import type pg from 'pg';
import { deleteOf } from '../../libs/convergence/erasure.ts';
import type { RecordHandler } from '../../libs/kafka/consumer-runtime.ts';
import type { NotifyErasure, NotifySuppression } from '../../libs/schemas/types.generated.ts';

/** notify.suppression: upserts and lifts; a lift written in `dc` is also recorded on notify.erasure. */
export function suppressionHandler(db: pg.Pool, dc: string): RecordHandler<NotifySuppression> {
  return {
    handle: (record) => upsertSuppression(db, record.value),
    async handleTombstone(record, context) {
      const lift = deleteOf(record, context, 'notify.suppression', dc);
      if (lift) await liftSuppression(db, lift.key, lift.at);
    },
  };
}

/** notify.erasure: lifts that outlive notify.suppression's compacted tombstones. */
export function liftHandler(db: pg.Pool): RecordHandler<NotifyErasure> {
  return {
    async handle({ value }) {
      if (value.stream === 'notify.suppression') await liftSuppression(db, value.key, value.meta.dt);
    },
  };
}

const VERSION_IS_NEWER = `(suppressions.record_dt, suppressions.lifted, suppressions.record_id COLLATE "C")
  < (excluded.record_dt, excluded.lifted, excluded.record_id COLLATE "C")`;

export async function upsertSuppression(db: pg.Pool, s: NotifySuppression): Promise<void> {
  await db.query(
    `INSERT INTO suppressions (address_hash, reason, until, detail, updated_at, record_dt, record_id)
     VALUES ($1, $2, CASE WHEN $3::bigint IS NULL THEN NULL ELSE to_timestamp($3::bigint / 1000.0) END, $4, now(),
             to_timestamp($5 / 1000.0), $6)
     ON CONFLICT (address_hash) DO UPDATE SET
       reason = excluded.reason, until = excluded.until, detail = excluded.detail, updated_at = now(),
       record_dt = excluded.record_dt, record_id = excluded.record_id, lifted = false
     WHERE ${VERSION_IS_NEWER}`,
    [s.address_hash, s.reason, s.until, s.detail, s.meta.dt, s.meta.id],
  );
}

/** Lifts the address's suppression as of `liftedAt`, unless a newer suppression is stored. */
export async function liftSuppression(db: pg.Pool, addressHash: string, liftedAt: number): Promise<void> {
  await db.query(
    `INSERT INTO suppressions (address_hash, updated_at, record_dt, record_id, lifted)
     VALUES ($1, now(), to_timestamp($2 / 1000.0), '', true)
     ON CONFLICT (address_hash) DO UPDATE SET
       reason = NULL, until = NULL, detail = NULL, updated_at = now(),
       record_dt = excluded.record_dt, record_id = '', lifted = true
     WHERE ${VERSION_IS_NEWER}`,
    [addressHash, liftedAt],
  );
}

/** Which of these address hashes are suppressed now. */
export async function suppressedAmong(db: pg.Pool, addressHashes: readonly string[]): Promise<Set<string>> {
  if (addressHashes.length === 0) return new Set();
  const { rows } = await db.query<{ address_hash: string }>(
    `SELECT address_hash FROM suppressions
     WHERE address_hash = ANY($1) AND NOT lifted AND (until IS NULL OR until > now())`,
    [addressHashes],
  );
  return new Set(rows.map((r) => r.address_hash));
}
