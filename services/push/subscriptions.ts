/**
 * The device registry push keeps in its own schema, materialized from notify.push-subscription.
 * A person keeps at most `cap` devices: a new one beyond that drops the oldest, which also bounds
 * how many tokens a single person can add to a multicast.
 */
import type pg from 'pg';
import { inTransaction } from '../../libs/db/transaction.ts';
import type { NotifyPushSubscription, PushProvider } from '../../libs/schemas/types.generated.ts';

export interface Device {
  userId: string;
  provider: PushProvider;
  token: string;
  tokenHash: string;
  app: string;
}

/** Stores (or refreshes) a device; returns the token hashes dropped by the per-person cap. */
export async function upsertSubscription(
  db: pg.Pool,
  sub: NotifyPushSubscription,
  cap: number,
): Promise<string[]> {
  return inTransaction(db, async (client) => {
    // Serializes devices of one person so two subscriptions cannot both slip under the cap.
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`push.subscriptions:${sub.user_id}`]);
    await client.query(
      `INSERT INTO subscriptions (token_hash, user_id, provider, token, app, locale, subscribed_at)
       VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7 / 1000.0))
       ON CONFLICT (token_hash) DO UPDATE SET
         user_id = excluded.user_id, provider = excluded.provider, token = excluded.token,
         app = excluded.app, locale = excluded.locale, subscribed_at = excluded.subscribed_at
       -- A record mirrored from the other datacenter may arrive after a newer one for the same token.
       WHERE subscriptions.subscribed_at <= excluded.subscribed_at`,
      [sub.token_hash, sub.user_id, sub.provider, sub.token, sub.app, sub.locale, sub.meta.dt],
    );
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

export async function deleteSubscriptions(db: pg.Pool, tokenHashes: readonly string[]): Promise<void> {
  if (tokenHashes.length === 0) return;
  await db.query('DELETE FROM subscriptions WHERE token_hash = ANY($1)', [tokenHashes]);
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
