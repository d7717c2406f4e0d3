/**
 * The digest side's tables (migrations/0001_init.sql): mail held for a bundle or a digest, the
 * bundling state per (recipient, bundle key), and the notification ids already turned into mail.
 * Times cross this module as ms since the epoch and are bound as Dates.
 *
 * Lock order, so that the consumer and the due-mail poller never deadlock: a pending_mail row
 * first, then its bundle_state row.
 */
import type pg from 'pg';
import type { Notification } from '../../libs/schemas/types.generated.ts';
import type { BundleState } from './bundler.ts';

export type PendingKind = 'bundle' | 'daily' | 'weekly';

export interface MailKey {
  readonly recipientId: string;
  readonly kind: PendingKind;
  /** The bundle key for bundles, '' for digests. */
  readonly groupKey: string;
}

export interface PendingMail extends MailKey {
  readonly dueAt: number;
  readonly email: string;
  readonly locale: string;
  readonly timezone: string;
}

export interface PendingItem {
  readonly notification: Notification;
  readonly eventTime: number;
}

type Queryable = Pick<pg.Pool | pg.PoolClient, 'query'>;

/** The ids among `ids` that were already mailed or are already held: a redelivery of them does nothing. */
export async function knownNotifications(db: Queryable, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const { rows } = await db.query<{ id: string }>(
    `SELECT notification_id AS id FROM emitted_notifications WHERE notification_id = ANY($1)
     UNION ALL
     SELECT notification_id FROM pending_items WHERE notification_id = ANY($1)`,
    [ids],
  );
  return new Set(rows.map((r) => r.id));
}

/** The bundling state of (recipient, bundle key), locking its rows until the transaction ends. */
export async function lockBundleState(
  client: pg.PoolClient,
  recipientId: string,
  bundleKey: string,
): Promise<BundleState> {
  const pending = await client.query<{ due_at: Date }>(
    `SELECT due_at FROM pending_mail WHERE recipient_id = $1 AND kind = 'bundle' AND group_key = $2 FOR UPDATE`,
    [recipientId, bundleKey],
  );
  const state = await client.query<{ last_sent_at: Date }>(
    'SELECT last_sent_at FROM bundle_state WHERE recipient_id = $1 AND bundle_key = $2 FOR UPDATE',
    [recipientId, bundleKey],
  );
  return {
    lastSentAt: state.rows[0]?.last_sent_at.getTime() ?? null,
    pendingDueAt: pending.rows[0]?.due_at.getTime() ?? null,
  };
}

/** Records mail that went out for bundle keys (instant sends, acknowledged by Kafka). */
export async function recordBundleSends(
  db: Queryable,
  sends: readonly { recipientId: string; bundleKey: string; sentAt: number }[],
): Promise<void> {
  if (sends.length === 0) return;
  await db.query(
    `INSERT INTO bundle_state (recipient_id, bundle_key, last_sent_at)
     SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])
     ON CONFLICT (recipient_id, bundle_key) DO UPDATE
       SET last_sent_at = GREATEST(bundle_state.last_sent_at, excluded.last_sent_at)`,
    [sends.map((s) => s.recipientId), sends.map((s) => s.bundleKey), sends.map((s) => new Date(s.sentAt))],
  );
}

/**
 * Holds a notification for its mail: opens the mail at `dueAt` if none is pending, otherwise keeps
 * the pending mail's due time and points it at the person's latest address, locale and timezone.
 * Returns false when the notification was already held (a redelivery).
 */
export async function holdItem(db: Queryable, mail: PendingMail, item: PendingItem): Promise<boolean> {
  await db.query(
    `INSERT INTO pending_mail (recipient_id, kind, group_key, due_at, email, locale, timezone)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (recipient_id, kind, group_key) DO UPDATE
       SET email = excluded.email, locale = excluded.locale, timezone = excluded.timezone`,
    [
      mail.recipientId,
      mail.kind,
      mail.groupKey,
      new Date(mail.dueAt),
      mail.email,
      mail.locale,
      mail.timezone,
    ],
  );
  const inserted = await db.query(
    `INSERT INTO pending_items (recipient_id, kind, group_key, notification_id, event_time, category, payload)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (notification_id) DO NOTHING`,
    [
      mail.recipientId,
      mail.kind,
      mail.groupKey,
      item.notification.notification_id,
      new Date(item.eventTime),
      item.notification.category,
      item.notification,
    ],
  );
  return inserted.rowCount === 1;
}

/**
 * Up to `limit` mails due at `now`, oldest first, locked for this transaction; rows another
 * transaction holds are skipped, so several pollers share the work. A range scan of pending_mail_due.
 */
export async function claimDue(client: pg.PoolClient, now: number, limit: number): Promise<PendingMail[]> {
  const { rows } = await client.query<{
    recipient_id: string;
    kind: PendingKind;
    group_key: string;
    due_at: Date;
    email: string;
    locale: string;
    timezone: string;
  }>(DUE_QUERY, [new Date(now), limit]);
  return rows.map((r) => ({
    recipientId: r.recipient_id,
    kind: r.kind,
    groupKey: r.group_key,
    dueAt: r.due_at.getTime(),
    email: r.email,
    locale: r.locale,
    timezone: r.timezone,
  }));
}

export const DUE_QUERY = `SELECT recipient_id, kind, group_key, due_at, email, locale, timezone
  FROM pending_mail WHERE due_at <= $1 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED`;

/** Items of the given mails through pending_items' primary key, in event-time order per mail. */
export const ITEMS_QUERY = `SELECT i.recipient_id, i.kind, i.group_key, i.event_time, i.payload
  FROM unnest($1::text[], $2::text[], $3::text[]) AS m(recipient_id, kind, group_key)
  JOIN pending_items i USING (recipient_id, kind, group_key)
  ORDER BY i.recipient_id, i.kind, i.group_key, i.event_time, i.notification_id`;

function keyArrays(mails: readonly MailKey[]): [string[], string[], string[]] {
  return [mails.map((m) => m.recipientId), mails.map((m) => m.kind), mails.map((m) => m.groupKey)];
}

export function mailKeyOf(mail: MailKey): string {
  return `${mail.recipientId}\u0000${mail.kind}\u0000${mail.groupKey}`;
}

export async function itemsOf(db: Queryable, mails: readonly MailKey[]): Promise<Map<string, PendingItem[]>> {
  const byMail = new Map<string, PendingItem[]>();
  if (mails.length === 0) return byMail;
  const { rows } = await db.query<{
    recipient_id: string;
    kind: PendingKind;
    group_key: string;
    event_time: Date;
    payload: Notification;
  }>(ITEMS_QUERY, keyArrays(mails));
  for (const row of rows) {
    const key = mailKeyOf({ recipientId: row.recipient_id, kind: row.kind, groupKey: row.group_key });
    const items = byMail.get(key) ?? [];
    items.push({ notification: row.payload, eventTime: row.event_time.getTime() });
    byMail.set(key, items);
  }
  return byMail;
}

/**
 * After the mails' records are acknowledged: forget the mails and their items, remember their
 * notification ids, and move each sent bundle's "last sent" to its due time (Echo's interval
 * restarts from the bundle, not from its first item).
 */
export async function completeMails(
  client: pg.PoolClient,
  mails: readonly PendingMail[],
  emitted: readonly { notificationId: string; sendId: string }[],
  now: number,
): Promise<void> {
  if (mails.length === 0) return;
  await client.query(
    `DELETE FROM pending_mail p USING unnest($1::text[], $2::text[], $3::text[]) AS m(recipient_id, kind, group_key)
     WHERE p.recipient_id = m.recipient_id AND p.kind = m.kind AND p.group_key = m.group_key`,
    keyArrays(mails),
  );
  await recordEmitted(client, emitted, now);
  const bundles = mails.filter((m) => m.kind === 'bundle');
  await recordBundleSends(
    client,
    bundles.map((m) => ({ recipientId: m.recipientId, bundleKey: m.groupKey, sentAt: m.dueAt })),
  );
}

export async function recordEmitted(
  db: Queryable,
  emitted: readonly { notificationId: string; sendId: string }[],
  now: number,
): Promise<void> {
  if (emitted.length === 0) return;
  await db.query(
    `INSERT INTO emitted_notifications (notification_id, send_id, emitted_at)
     SELECT id, send_id, $3 FROM unnest($1::text[], $2::text[]) AS e(id, send_id)
     ON CONFLICT (notification_id) DO NOTHING`,
    [emitted.map((e) => e.notificationId), emitted.map((e) => e.sendId), new Date(now)],
  );
}

/** A due mail that could not be rendered waits this long before the next attempt, instead of spinning. */
export async function postpone(client: pg.PoolClient, mail: MailKey, until: number): Promise<void> {
  await client.query(
    'UPDATE pending_mail SET due_at = $4 WHERE recipient_id = $1 AND kind = $2 AND group_key = $3',
    [mail.recipientId, mail.kind, mail.groupKey, new Date(until)],
  );
}

/**
 * Deletes, in batches through their age indexes, emitted ids older than the retention and bundle
 * states whose interval is over with nothing pending (they behave like no state at all).
 */
export async function cleanUp(
  db: Queryable,
  {
    now,
    emittedRetentionMs,
    bundleIntervalMs,
    batch = 1_000,
  }: {
    now: number;
    emittedRetentionMs: number;
    bundleIntervalMs: number;
    batch?: number;
  },
): Promise<{ emitted: number; bundleStates: number }> {
  const emitted = await db.query(
    `DELETE FROM emitted_notifications WHERE notification_id IN (
       SELECT notification_id FROM emitted_notifications WHERE emitted_at < $1 LIMIT $2)`,
    [new Date(now - emittedRetentionMs), batch],
  );
  const states = await db.query(
    `DELETE FROM bundle_state s WHERE (recipient_id, bundle_key) IN (
       SELECT recipient_id, bundle_key FROM bundle_state WHERE last_sent_at < $1 LIMIT $2)
     AND NOT EXISTS (SELECT 1 FROM pending_mail p
       WHERE p.recipient_id = s.recipient_id AND p.kind = 'bundle' AND p.group_key = s.bundle_key)`,
    [new Date(now - bundleIntervalMs), batch],
  );
  return { emitted: emitted.rowCount ?? 0, bundleStates: states.rowCount ?? 0 };
}

/** Mails waiting, for the pending gauge: an index-only count of pending_mail_due. */
export async function countPending(db: Queryable, now: number): Promise<{ pending: number; due: number }> {
  const { rows } = await db.query<{ pending: string; due: string }>(
    'SELECT count(*) AS pending, count(*) FILTER (WHERE due_at <= $1) AS due FROM pending_mail',
    [new Date(now)],
  );
  return { pending: Number(rows[0]?.pending ?? 0), due: Number(rows[0]?.due ?? 0) };
}
