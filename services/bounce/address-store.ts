/**
 * Per-address suppression state in bounce's own tables (migrations/). Every change to an address
 * happens inside withAddress(), which holds the row lock, so the consumer, the release sweep and an
 * operator's lift never interleave on one address.
 */
import type pg from 'pg';
import { inTransaction } from '../../libs/db/transaction.ts';
import type { SuppressionReason } from '../../libs/schemas/types.generated.ts';
import type { AddressState } from './suppression-policy.ts';

export interface AddressRecord {
  readonly addressHash: string;
  readonly address: string | null;
  readonly recipientId: string | null;
  readonly detail: string | null;
  readonly state: AddressState;
}

interface Row {
  address_hash: string;
  address: string | null;
  recipient_id: string | null;
  reason: SuppressionReason | null;
  since: Date | null;
  until: Date | null;
  soft_bounces: string[];
  detail: string | null;
}

const COLUMNS = 'address_hash, address, recipient_id, reason, since, until, soft_bounces, detail';

function fromRow(row: Row): AddressRecord {
  return {
    addressHash: row.address_hash,
    address: row.address,
    recipientId: row.recipient_id,
    detail: row.detail,
    state: {
      suppression:
        row.reason && row.since
          ? { reason: row.reason, since: row.since.getTime(), until: row.until?.getTime() ?? null }
          : null,
      softBounces: row.soft_bounces.map(Number),
    },
  };
}

export interface AddressTransaction {
  readonly current: AddressRecord;
  /**
   * Records a notify.bounce id as applied; false if it was already (a redelivery), in which case
   * nothing may change.
   */
  markApplied(bounceId: string): Promise<boolean>;
  save(next: AddressRecord): Promise<void>;
}

/**
 * Runs `fn` with the address's row locked (created empty if new) and commits what it saved; an
 * exception rolls everything back, so state changes only once fn's outputs were made durable.
 */
export async function withAddress<T>(
  db: pg.Pool,
  addressHash: string,
  fn: (tx: AddressTransaction) => Promise<T>,
): Promise<T> {
  return inTransaction(db, async (client) => {
    await client.query('INSERT INTO addresses (address_hash) VALUES ($1) ON CONFLICT DO NOTHING', [
      addressHash,
    ]);
    const { rows } = await client.query<Row>(
      `SELECT ${COLUMNS} FROM addresses WHERE address_hash = $1 FOR UPDATE`,
      [addressHash],
    );
    const current = fromRow(rows[0]!);
    const result = await fn({
      current,
      async markApplied(bounceId) {
        const inserted = await client.query(
          'INSERT INTO applied_bounces (bounce_id) VALUES ($1) ON CONFLICT DO NOTHING',
          [bounceId],
        );
        return inserted.rowCount === 1;
      },
      async save(next) {
        const s = next.state.suppression;
        await client.query(
          `UPDATE addresses SET address = $2, recipient_id = $3, reason = $4, since = $5, until = $6,
             soft_bounces = $7, detail = $8, updated_at = now()
           WHERE address_hash = $1`,
          [
            addressHash,
            next.address,
            next.recipientId,
            s?.reason ?? null,
            s ? new Date(s.since) : null,
            s?.until != null ? new Date(s.until) : null,
            next.state.softBounces,
            next.detail,
          ],
        );
      },
    });
    return result;
  });
}

/** Addresses whose suppression ends at or before `now`, soonest first (by the partial index). */
export async function dueReleases(db: pg.Pool, now: number, limit: number): Promise<string[]> {
  const { rows } = await db.query<{ address_hash: string }>(
    'SELECT address_hash FROM addresses WHERE until IS NOT NULL AND until <= $1 ORDER BY until LIMIT $2',
    [new Date(now), limit],
  );
  return rows.map((r) => r.address_hash);
}

export interface SuppressionView {
  readonly address_hash: string;
  readonly address: string | null;
  readonly recipient_id: string | null;
  readonly reason: SuppressionReason;
  readonly since: string;
  readonly until: string | null;
  readonly detail: string | null;
}

/** Current suppressions, newest first; `reason` narrows to one kind. */
export async function listSuppressions(
  db: pg.Pool,
  { limit, reason }: { limit: number; reason?: SuppressionReason },
): Promise<SuppressionView[]> {
  const { rows } = await db.query<Row>(
    `SELECT ${COLUMNS} FROM addresses
     WHERE reason IS NOT NULL AND ($2::text IS NULL OR reason = $2)
     ORDER BY since DESC LIMIT $1`,
    [limit, reason ?? null],
  );
  return rows.map((row) => ({
    address_hash: row.address_hash,
    address: row.address,
    recipient_id: row.recipient_id,
    reason: row.reason!,
    since: row.since!.toISOString(),
    until: row.until?.toISOString() ?? null,
    detail: row.detail,
  }));
}

/** Forgets applied bounce ids older than the longest a redelivery can come late. */
export async function pruneApplied(db: pg.Pool, olderThan: number): Promise<number> {
  const result = await db.query('DELETE FROM applied_bounces WHERE applied_at < $1', [new Date(olderThan)]);
  return result.rowCount ?? 0;
}
