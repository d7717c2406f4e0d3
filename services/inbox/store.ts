/**
 * The inbox's tables (migrations/0001_init.sql): a person's web notifications, their state, and the
 * counters a badge reads. Every write runs in one transaction holding the person's `people` row, so
 * the counters change with the rows they count and never drift; the HTTP API reads them with one
 * primary-key lookup.
 *
 * Convergence: a notification is stored once per notification id; read and archived flags carry
 * the meta.dt of the mark that set them and only a newer mark changes them; marks for notifications
 * not stored yet wait in `marks`, and "all up to" marks in the person's watermark; an erased person
 * keeps a marker that keeps older records out.
 */
import type pg from 'pg';
import { inTransaction } from '../../libs/db/transaction.ts';
import type { InboxAction, Notification } from '../../libs/schemas/types.generated.ts';

export type Section = 'alert' | 'notice';

export interface StoreSettings {
  /** Notifications with the same bundle key in one window of this length show as one entry. */
  bundleWindowMs: number;
  /** Categories with a priority at or below this are alerts, the rest notices (Echo's two badges). */
  alertMaxPriority: number;
  /** Most notifications kept per person; beyond it the oldest read ones go first. */
  maxPerPerson: number;
  /** Notifications older than this are not stored, and are swept. */
  maxAgeMs: number;
  /** NOTIFY channel live updates travel on (one per schema: tests share a database). */
  channel: string;
}

export interface IncomingNotification {
  notification: Notification;
  /** meta.dt: the source event's time. */
  eventMs: number;
  folded: boolean;
}

export interface StateChange {
  userId: string;
  action: InboxAction;
  notificationIds: readonly string[];
  upTo: number | null;
  /** meta.dt of the change. */
  dt: number;
}

type Client = pg.PoolClient;

export function sectionOf(priority: number, settings: Pick<StoreSettings, 'alertMaxPriority'>): Section {
  return priority <= settings.alertMaxPriority ? 'alert' : 'notice';
}

/**
 * The entry a notification shows in. Windows are fixed slices of event time rather than "since the
 * bundle's first item", so both datacenters bundle alike whatever order records arrive in.
 */
export function entryIdOf(
  { notification, eventMs, folded }: IncomingNotification,
  bundleWindowMs: number,
): string {
  const window = Math.floor(eventMs / bundleWindowMs);
  if (folded) return `folded:${notification.category}:${window}`;
  if (notification.bundle_key !== null) return `bundle:${notification.bundle_key}:${window}`;
  return `single:${notification.notification_id}`;
}

interface PersonRow {
  seq: string;
  total: number;
  seen_until: string;
  read_until: string;
  read_until_dt: string;
  erased_at: string | null;
}

/** The person's row, created if missing and locked until the transaction ends. */
async function lockPerson(client: Client, userId: string): Promise<PersonRow> {
  await client.query('INSERT INTO people (user_id) VALUES ($1) ON CONFLICT DO NOTHING', [userId]);
  const { rows } = await client.query<PersonRow>(
    'SELECT seq, total, seen_until, read_until, read_until_dt, erased_at FROM people WHERE user_id = $1 FOR UPDATE',
    [userId],
  );
  const row = rows[0];
  if (!row) throw new Error(`people row of ${userId} vanished`);
  return row;
}

/** Recounts a person's counters from their rows: after changes that touch many rows at once. */
async function recount(client: Client, userId: string): Promise<void> {
  await client.query(
    `UPDATE people p SET
       total = c.total, unread = c.unread, unseen = c.unseen
     FROM (SELECT count(*)::int AS total,
                  count(*) FILTER (WHERE NOT n.read AND NOT n.archived)::int AS unread,
                  count(*) FILTER (WHERE n.event_ms > pp.seen_until AND NOT n.archived)::int AS unseen
           FROM people pp LEFT JOIN notifications n ON n.user_id = pp.user_id
           WHERE pp.user_id = $1) c
     WHERE p.user_id = $1`,
    [userId],
  );
}

async function announce(client: Client, channel: string, userId: string): Promise<void> {
  await client.query('SELECT pg_notify($1, $2)', [channel, userId]);
}

export type StoreOutcome = 'stored' | 'duplicate' | 'erased' | 'removed' | 'too-old';

/** Stores one notification, enforcing the cap; what happened, for metrics. */
export async function storeNotification(
  db: pg.Pool,
  incoming: IncomingNotification,
  settings: StoreSettings,
  now: number,
): Promise<StoreOutcome> {
  const { notification: n, eventMs } = incoming;
  if (eventMs < now - settings.maxAgeMs) return 'too-old';
  return inTransaction(db, async (client) => {
    const person = await lockPerson(client, n.recipient_id);
    if (person.erased_at !== null && eventMs <= Number(person.erased_at)) return 'erased';
    const known = await client.query<{ outcome: 'duplicate' | 'removed' }>(
      `SELECT 'duplicate' AS outcome FROM notifications WHERE notification_id = $1
       UNION ALL SELECT 'removed' FROM removed WHERE notification_id = $1`,
      [n.notification_id],
    );
    const seen = known.rows[0]?.outcome;
    if (seen) return seen;
    const marks = await client.query<{ kind: 'read' | 'archive'; value: boolean; dt: string }>(
      'SELECT kind, value, dt FROM marks WHERE notification_id = $1',
      [n.notification_id],
    );
    const readMark = marks.rows.find((m) => m.kind === 'read');
    const archiveMark = marks.rows.find((m) => m.kind === 'archive');
    let read = false;
    let readDt = 0;
    if (eventMs <= Number(person.read_until)) {
      read = true;
      readDt = Number(person.read_until_dt);
    }
    if (readMark && Number(readMark.dt) > readDt) {
      read = readMark.value;
      readDt = Number(readMark.dt);
    }
    const archived = archiveMark?.value ?? false;
    const seq = Number(person.seq) + 1;
    await client.query(
      `INSERT INTO notifications (notification_id, user_id, seq, event_id, entry_id, event_ms, category,
         section, folded, payload, read, read_dt, archived, archived_dt)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
      [
        n.notification_id,
        n.recipient_id,
        seq,
        n.event_id,
        entryIdOf(incoming, settings.bundleWindowMs),
        eventMs,
        n.category,
        sectionOf(n.priority, settings),
        incoming.folded,
        n,
        read,
        readDt,
        archived,
        archiveMark ? Number(archiveMark.dt) : 0,
      ],
    );
    if (marks.rowCount) {
      await client.query('DELETE FROM marks WHERE notification_id = $1', [n.notification_id]);
    }
    const visible = !archived;
    await client.query(
      `UPDATE people SET seq = $2, total = total + 1, unread = unread + $3, unseen = unseen + $4
       WHERE user_id = $1`,
      [n.recipient_id, seq, visible && !read ? 1 : 0, visible && eventMs > Number(person.seen_until) ? 1 : 0],
    );
    if (person.total + 1 > settings.maxPerPerson) {
      await client.query(
        `WITH evicted AS (
           DELETE FROM notifications WHERE notification_id IN (
             SELECT notification_id FROM notifications WHERE user_id = $1
             ORDER BY read DESC, event_ms, notification_id LIMIT $2)
           RETURNING notification_id)
         INSERT INTO removed (notification_id, removed_at) SELECT notification_id, $3 FROM evicted
         ON CONFLICT DO NOTHING`,
        [n.recipient_id, person.total + 1 - settings.maxPerPerson, now],
      );
      await recount(client, n.recipient_id);
    }
    await announce(client, settings.channel, n.recipient_id);
    return 'stored';
  });
}

/**
 * Applies a person's read / unread / seen / archive / unarchive change, from this datacenter's API
 * or from notify.inbox-state of either datacenter; applying the same change twice changes nothing.
 */
export async function applyStateChange(
  db: pg.Pool,
  change: StateChange,
  settings: Pick<StoreSettings, 'channel'>,
): Promise<void> {
  const { userId, action, notificationIds: ids, upTo, dt } = change;
  await inTransaction(db, async (client) => {
    const person = await lockPerson(client, userId);
    if (person.erased_at !== null && dt <= Number(person.erased_at)) return;
    if (action === 'seen') {
      if (upTo !== null) {
        await client.query('UPDATE people SET seen_until = GREATEST(seen_until, $2) WHERE user_id = $1', [
          userId,
          upTo,
        ]);
      }
    } else {
      const kind = action === 'read' || action === 'unread' ? 'read' : 'archive';
      const value = action === 'read' || action === 'archive';
      const column = kind === 'read' ? 'read' : 'archived';
      // Column names come from the two literals above, never from input.
      const { rows } = await client.query<{ notification_id: string }>(
        `UPDATE notifications SET ${column} = $3, ${column}_dt = $4
         WHERE user_id = $1 AND notification_id = ANY($2) AND ${column}_dt < $4
         RETURNING notification_id`,
        [userId, ids, value, dt],
      );
      const present = new Set(rows.map((r) => r.notification_id));
      const stored = await client.query<{ notification_id: string }>(
        'SELECT notification_id FROM notifications WHERE notification_id = ANY($1)',
        [ids.filter((id) => !present.has(id))],
      );
      for (const r of stored.rows) present.add(r.notification_id);
      const absent = ids.filter((id) => !present.has(id));
      if (absent.length > 0) {
        await client.query(
          `INSERT INTO marks (notification_id, kind, user_id, value, dt)
           SELECT id, $2, $3, $4, $5 FROM unnest($1::text[]) AS id
           ON CONFLICT (notification_id, kind) DO UPDATE SET value = excluded.value, dt = excluded.dt
           WHERE marks.dt < excluded.dt`,
          [absent, kind, userId, value, dt],
        );
      }
      if (action === 'read' && upTo !== null) {
        await client.query(
          `UPDATE notifications SET read = true, read_dt = $3
           WHERE user_id = $1 AND event_ms <= $2 AND read_dt < $3`,
          [userId, upTo, dt],
        );
        await client.query(
          `UPDATE people SET read_until = $2, read_until_dt = $3
           WHERE user_id = $1 AND read_until_dt < $3`,
          [userId, upTo, dt],
        );
      }
    }
    await recount(client, userId);
    await announce(client, settings.channel, userId);
  });
}

/** Erases a person's inbox; the marker keeps records older than `at` from bringing it back. */
export async function erasePerson(
  db: pg.Pool,
  userId: string,
  at: number,
  settings: Pick<StoreSettings, 'channel'>,
): Promise<void> {
  await inTransaction(db, async (client) => {
    await lockPerson(client, userId);
    await client.query('DELETE FROM notifications WHERE user_id = $1', [userId]);
    await client.query('DELETE FROM marks WHERE user_id = $1', [userId]);
    await client.query(
      `UPDATE people SET total = 0, unread = 0, unseen = 0, seen_until = 0, read_until = 0,
         read_until_dt = 0, erased_at = GREATEST(COALESCE(erased_at, 0), $2)
       WHERE user_id = $1`,
      [userId, at],
    );
    await announce(client, settings.channel, userId);
  });
}

export interface Counts {
  unread: number;
  unseen: number;
  seenUntil: number;
  /** The last live-update id, for a client that starts the stream after reading the list. */
  seq: number;
}

export async function countsOf(db: Pick<pg.Pool, 'query'>, userId: string): Promise<Counts> {
  const { rows } = await db.query<{ unread: number; unseen: number; seen_until: string; seq: string }>(
    'SELECT unread, unseen, seen_until, seq FROM people WHERE user_id = $1',
    [userId],
  );
  const row = rows[0];
  return {
    unread: row?.unread ?? 0,
    unseen: row?.unseen ?? 0,
    seenUntil: Number(row?.seen_until ?? 0),
    seq: Number(row?.seq ?? 0),
  };
}

export interface ListQuery {
  limit: number;
  unreadOnly: boolean;
  category: string | null;
  section: Section | null;
  /** The last entry of the previous page: entries strictly older come next. */
  before: { latest: number; entryId: string } | null;
}

export interface Entry {
  entryId: string;
  kind: 'single' | 'bundle' | 'folded';
  latest: number;
  count: number;
  unread: number;
  /** The newest notification of the entry. */
  notification: Notification;
  /** Distinct actors, newest first, at most three. */
  actors: string[];
  notificationIds: string[];
  eventIds: string[];
}

/** Entries newest first; one group-by over the person's rows, which the cap bounds. */
export async function listEntries(
  db: Pick<pg.Pool, 'query'>,
  userId: string,
  q: ListQuery,
): Promise<{ entries: Entry[]; more: boolean }> {
  const { rows } = await db.query<{
    entry_id: string;
    latest: string;
    count: number;
    unread: number;
    payloads: Notification[];
    ids: string[];
    event_ids: string[];
  }>(
    `SELECT entry_id, max(event_ms) AS latest, count(*)::int AS count,
            count(*) FILTER (WHERE NOT read)::int AS unread,
            (array_agg(payload ORDER BY event_ms DESC, notification_id DESC))[1:20] AS payloads,
            array_agg(notification_id ORDER BY event_ms DESC, notification_id DESC) AS ids,
            array_agg(event_id ORDER BY event_ms DESC, notification_id DESC) AS event_ids
     FROM notifications
     WHERE user_id = $1 AND NOT archived
       AND ($2::text IS NULL OR category = $2) AND ($3::text IS NULL OR section = $3)
     GROUP BY entry_id
     HAVING (NOT $4 OR bool_or(NOT read))
       AND ($5::bigint IS NULL OR (max(event_ms), entry_id) < ($5, $6::text))
     ORDER BY latest DESC, entry_id DESC
     LIMIT $7`,
    [
      userId,
      q.category,
      q.section,
      q.unreadOnly,
      q.before?.latest ?? null,
      q.before?.entryId ?? '',
      q.limit + 1,
    ],
  );
  const entries = rows.slice(0, q.limit).map((r) => {
    const [first] = r.payloads;
    if (!first) throw new Error(`entry ${r.entry_id} has no notification`);
    const actors: string[] = [];
    for (const p of r.payloads) {
      const name = p.agent?.name;
      if (name && !actors.includes(name) && actors.length < 3) actors.push(name);
    }
    return {
      entryId: r.entry_id,
      kind: r.entry_id.slice(0, r.entry_id.indexOf(':')) as Entry['kind'],
      latest: Number(r.latest),
      count: r.count,
      unread: r.unread,
      notification: first,
      actors,
      notificationIds: r.ids,
      eventIds: r.event_ids,
    };
  });
  return { entries, more: rows.length > q.limit };
}

/** Event ids and the newest event time among a person's listed notifications (for the state record). */
export async function describeNotifications(
  db: Pick<pg.Pool, 'query'>,
  userId: string,
  ids: readonly string[],
): Promise<{ eventIds: string[]; latest: number | null }> {
  const { rows } = await db.query<{ event_id: string; event_ms: string }>(
    'SELECT event_id, event_ms FROM notifications WHERE user_id = $1 AND notification_id = ANY($2)',
    [userId, ids],
  );
  return {
    eventIds: rows.map((r) => r.event_id),
    latest: rows.length > 0 ? Math.max(...rows.map((r) => Number(r.event_ms))) : null,
  };
}

export interface LiveNotification {
  seq: number;
  entryId: string;
  eventMs: number;
  notification: Notification;
}

/** A person's notifications stored after live-update id `afterSeq`, oldest first. */
export async function notificationsAfter(
  db: Pick<pg.Pool, 'query'>,
  userId: string,
  afterSeq: number,
  limit: number,
): Promise<LiveNotification[]> {
  const { rows } = await db.query<{ seq: string; entry_id: string; event_ms: string; payload: Notification }>(
    `SELECT seq, entry_id, event_ms, payload FROM notifications
     WHERE user_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
    [userId, afterSeq, limit],
  );
  return rows.map((r) => ({
    seq: Number(r.seq),
    entryId: r.entry_id,
    eventMs: Number(r.event_ms),
    notification: r.payload,
  }));
}

/**
 * Deletes, in batches, notifications past the maximum age and markers no record can need any more;
 * recounts the people touched. Returns how many notifications went.
 */
export async function sweep(
  db: pg.Pool,
  {
    now,
    maxAgeMs,
    markerRetentionMs,
    batch = 1_000,
  }: {
    now: number;
    maxAgeMs: number;
    markerRetentionMs: number;
    batch?: number;
  },
): Promise<number> {
  const { rows } = await db.query<{ user_id: string }>(
    `SELECT DISTINCT user_id FROM (
       SELECT user_id FROM notifications WHERE event_ms < $1 LIMIT $2) old`,
    [now - maxAgeMs, batch],
  );
  let deleted = 0;
  for (const { user_id: userId } of rows) {
    deleted += await inTransaction(db, async (client) => {
      await lockPerson(client, userId);
      const { rowCount } = await client.query(
        'DELETE FROM notifications WHERE user_id = $1 AND event_ms < $2',
        [userId, now - maxAgeMs],
      );
      await recount(client, userId);
      return rowCount ?? 0;
    });
  }
  await db.query(
    'DELETE FROM removed WHERE notification_id IN (SELECT notification_id FROM removed WHERE removed_at < $1 LIMIT $2)',
    [now - markerRetentionMs, batch],
  );
  await db.query(
    `DELETE FROM marks WHERE (notification_id, kind) IN (
       SELECT notification_id, kind FROM marks WHERE dt < $1 LIMIT $2)`,
    [now - markerRetentionMs, batch],
  );
  return deleted;
}
