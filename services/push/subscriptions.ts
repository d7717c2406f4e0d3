/**
 * The device registry push keeps in its own schema, materialized from notify.push-subscription.
 * A person keeps at most `cap` devices: a new one beyond that drops the oldest, which also bounds
 * how many tokens a single person can add to a multicast.
 *
 * It converges whatever order records arrive in (docs/architecture.md, "Convergence"): newest
 * version wins per token, a removed token and an erased person leave markers (migrations/0002).
 */
import type pg from 'pg';
import type { Logger } from 'pino';
import { deleteOf } from '../../libs/convergence/erasure.ts';
import { inTransaction } from '../../libs/db/transaction.ts';
import type { RecordHandler } from '../../libs/kafka/consumer-runtime.ts';
import type {
  NotifyErasure,
  NotifyPushSubscription,
  PushProvider,
} from '../../libs/schemas/types.generated.ts';

export interface Device {
  userId: string;
  provider: PushProvider;
  token: string;
  tokenHash: string;
  app: string;
}

const VERSION_IS_NEWER = `(subscriptions.subscribed_at, subscriptions.removed, subscriptions.record_id COLLATE "C")
  < (excluded.subscribed_at, excluded.removed, excluded.record_id COLLATE "C")`;

/** Serializes the writes about one person's devices: the cap, and an erasure against a late subscription. */
function lockPerson(client: pg.PoolClient, userId: string): Promise<unknown> {
  return client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`push.subscriptions:${userId}`]);
}

/**
 * Stores (or refreshes) a device unless a newer version of it is already stored; returns the token
 * hashes dropped by the per-person cap.
 */
export async function upsertSubscription(
  db: pg.Pool,
  sub: NotifyPushSubscription,
  cap: number,
): Promise<string[]> {
  return inTransaction(db, async (client) => {
    await lockPerson(client, sub.user_id);
    // A subscription of an erased person, no newer than the erasure, is stored as a marker: it may
    // be the newest record of its token, and an older record of that token must still lose to it.
    const { rows: stored } = await client.query<{ stored: boolean }>(
      `WITH erased AS (
         SELECT EXISTS (SELECT 1 FROM erased_people
                        WHERE user_id = $2 AND erased_at >= to_timestamp($7 / 1000.0)) AS e)
       INSERT INTO subscriptions (token_hash, user_id, provider, token, app, locale, subscribed_at, record_id, removed, erased)
       SELECT $1, CASE WHEN e THEN NULL ELSE $2 END, CASE WHEN e THEN NULL ELSE $3 END,
              CASE WHEN e THEN NULL ELSE $4 END, CASE WHEN e THEN NULL ELSE $5 END,
              CASE WHEN e THEN NULL ELSE $6 END, to_timestamp($7 / 1000.0), $8, false, e
       FROM erased
       ON CONFLICT (token_hash) DO UPDATE SET
         user_id = excluded.user_id, provider = excluded.provider, token = excluded.token,
         app = excluded.app, locale = excluded.locale, subscribed_at = excluded.subscribed_at,
         record_id = excluded.record_id, removed = excluded.removed, erased = excluded.erased
       WHERE ${VERSION_IS_NEWER}
       RETURNING NOT erased AS stored`,
      [sub.token_hash, sub.user_id, sub.provider, sub.token, sub.app, sub.locale, sub.meta.dt, sub.meta.id],
    );
    if (stored[0]?.stored !== true) return [];
    const { rows } = await client.query<{ token_hash: string }>(
      `DELETE FROM subscriptions WHERE token_hash IN (
         SELECT token_hash FROM subscriptions WHERE user_id = $1
         ORDER BY subscribed_at DESC, token_hash OFFSET $2)
       RETURNING token_hash`,
      [sub.user_id, cap],
    );
    return rows.map((r) => r.token_hash);
  });
}

/** Tombstoned devices (unsubscribed, or dead at the provider) as of `removedAt`: markers, see the migration. */
export async function removeDevices(
  db: pg.Pool,
  tokenHashes: readonly string[],
  removedAt: number,
): Promise<void> {
  if (tokenHashes.length === 0) return;
  await db.query(
    `INSERT INTO subscriptions (token_hash, subscribed_at, record_id, removed)
     SELECT h, to_timestamp($2 / 1000.0), '', true FROM unnest($1::text[]) AS h ORDER BY h
     ON CONFLICT (token_hash) DO UPDATE SET
       user_id = NULL, provider = NULL, token = NULL, app = NULL, locale = NULL,
       subscribed_at = excluded.subscribed_at, record_id = '', removed = true, erased = false
     WHERE ${VERSION_IS_NEWER}`,
    [[...new Set(tokenHashes)], removedAt],
  );
}

/**
 * An erased person's devices as of `erasedAt` become markers that keep the version of the record
 * they replace (so an older record of the same token, whoever it names, still loses to it).
 */
export async function erasePerson(db: pg.Pool, userId: string, erasedAt: number): Promise<void> {
  await inTransaction(db, async (client) => {
    await lockPerson(client, userId);
    await client.query(
      `WITH marker AS (
         INSERT INTO erased_people (user_id, erased_at) VALUES ($1, to_timestamp($2 / 1000.0))
         ON CONFLICT (user_id) DO UPDATE SET erased_at = GREATEST(erased_people.erased_at, excluded.erased_at))
       UPDATE subscriptions SET user_id = NULL, provider = NULL, token = NULL, app = NULL, locale = NULL, erased = true
       WHERE user_id = $1 AND subscribed_at <= to_timestamp($2 / 1000.0)`,
      [userId, erasedAt],
    );
  });
}

/** notify.push-subscription: devices, and tombstones (one written in `dc` is also recorded on notify.erasure). */
export function subscriptionHandler(
  db: pg.Pool,
  { cap, dc, log }: { cap: number; dc: string; log: Logger },
): RecordHandler<NotifyPushSubscription> {
  return {
    async handle(record) {
      const dropped = await upsertSubscription(db, record.value, cap);
      if (dropped.length > 0) {
        log.info(
          { user_id: record.value.user_id, dropped: dropped.length },
          'device cap: dropped the oldest',
        );
      }
    },
    async handleTombstone(record, context) {
      const removed = deleteOf(record, context, 'notify.push-subscription', dc);
      if (removed) await removeDevices(db, [removed.key], removed.at);
    },
  };
}

/** notify.erasure: erased people and removed devices, beyond their tombstones' compaction. */
export function erasureHandler(db: pg.Pool): RecordHandler<NotifyErasure> {
  return {
    async handle({ value }) {
      if (value.stream === 'notify.user') await erasePerson(db, value.key, value.meta.dt);
      if (value.stream === 'notify.push-subscription') await removeDevices(db, [value.key], value.meta.dt);
    },
  };
}

export async function devicesOf(db: pg.Pool, userIds: readonly string[]): Promise<Map<string, Device[]>> {
  const devices = new Map<string, Device[]>();
  if (userIds.length === 0) return devices;
  const { rows } = await db.query<{
    user_id: string;
    provider: PushProvider;
    token: string;
    token_hash: string;
    app: string;
  }>('SELECT user_id, provider, token, token_hash, app FROM subscriptions WHERE user_id = ANY($1)', [
    userIds,
  ]);
  for (const row of rows) {
    const list = devices.get(row.user_id) ?? [];
    list.push({
      userId: row.user_id,
      provider: row.provider,
      token: row.token,
      tokenHash: row.token_hash,
      app: row.app,
    });
    devices.set(row.user_id, list);
  }
  return devices;
}

/** Pairs `notification_id|token_hash` already delivered among those asked about. */
export async function deliveredPairs(db: pg.Pool, notificationIds: readonly string[]): Promise<Set<string>> {
  if (notificationIds.length === 0) return new Set();
  const { rows } = await db.query<{ notification_id: string; token_hash: string }>(
    'SELECT notification_id, token_hash FROM delivered WHERE notification_id = ANY($1)',
    [notificationIds],
  );
  return new Set(rows.map((r) => `${r.notification_id}|${r.token_hash}`));
}

export async function recordDelivered(
  db: pg.Pool,
  pairs: readonly { notificationId: string; tokenHash: string }[],
): Promise<void> {
  if (pairs.length === 0) return;
  await db.query(
    `INSERT INTO delivered (notification_id, token_hash)
     SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING`,
    [pairs.map((p) => p.notificationId), pairs.map((p) => p.tokenHash)],
  );
}

export async function pruneDelivered(db: pg.Pool, olderThanMs: number): Promise<number> {
  const { rowCount } = await db.query(
    "DELETE FROM delivered WHERE delivered_at < now() - $1 * interval '1 millisecond'",
    [olderThanMs],
  );
  return rowCount ?? 0;
}
