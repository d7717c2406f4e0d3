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
  user_id: string;
  seq: string;
  total: number;
  seen_until: string;
  read_until: string;
  read_until_dt: string;
  erased_at: string | null;
}

const PERSON_COLUMNS = 'user_id, seq, total, seen_until, read_until, read_until_dt, erased_at';

/**
 * The people's rows, created if missing and locked until the transaction ends, in user id order: a
 * person's records come from two topics (one per datacenter prefix), whose batches may run at once.
 */
async function lockPeople(client: Client, userIds: readonly string[]): Promise<Map<string, PersonRow>> {
  const ids = [...new Set(userIds)].sort();
  await client.query(
    'INSERT INTO people (user_id) SELECT * FROM unnest($1::text[]) ORDER BY 1 ON CONFLICT DO NOTHING',
    [ids],
  );
  const { rows } = await client.query<PersonRow>(
    `SELECT ${PERSON_COLUMNS} FROM people WHERE user_id = ANY($1) ORDER BY user_id FOR UPDATE`,
    [ids],
  );
  return new Map(rows.map((r) => [r.user_id, r]));
}

async function lockPerson(client: Client, userId: string): Promise<PersonRow> {
  const row = (await lockPeople(client, [userId])).get(userId);
  if (!row) throw new Error(`people row of ${userId} vanished`);
  return row;
}

/** Recounts a person's counters from their rows: after changes that touch many rows at once. */
async function recount(client: Client, userId: string): Promise<void> {
  await client.query(
    `UPDATE people p SET
       total = c.total, unread = c.unread, unseen = c.unseen
     FROM (SELECT count(n.notification_id)::int AS total,
                  count(*) FILTER (WHERE NOT n.read AND NOT n.archived)::int AS unread,
                  count(*) FILTER (WHERE n.event_ms > pp.seen_until AND NOT n.archived)::int AS unseen
           FROM people pp LEFT JOIN notifications n ON n.user_id = pp.user_id
           WHERE pp.user_id = $1) c
     WHERE p.user_id = $1`,
    [userId],
  );
}

async function announce(client: Client, channel: string, userIds: readonly string[]): Promise<void> {
  await client.query('SELECT pg_notify($1, u) FROM unnest($2::text[]) AS u', [
    channel,
    [...new Set(userIds)],
  ]);
}

export type StoreOutcome = 'stored' | 'duplicate' | 'erased' | 'removed' | 'too-old';

/**
 * Stores a fetched batch of notifications in one transaction, enforcing the cap; what happened to
 * each, by notification id, for metrics. One transaction per batch, not per record: a commit (and
 * its NOTIFY, which serializes commits) per record held the inbox to a few hundred a second.
 */
export async function storeNotifications(
  db: pg.Pool,
  batch: readonly IncomingNotification[],
  settings: StoreSettings,
  now: number,
): Promise<Map<string, StoreOutcome>> {
  const outcomes = new Map<string, StoreOutcome>();
  const fresh = batch.filter((item) => {
    if (item.eventMs >= now - settings.maxAgeMs) return true;
    outcomes.set(item.notification.notification_id, 'too-old');
    return false;
  });
  if (fresh.length === 0) return outcomes;
  return inTransaction(db, async (client) => {
    const people = await lockPeople(
      client,
      fresh.map((item) => item.notification.recipient_id),
    );
    const ids = fresh.map((item) => item.notification.notification_id);
    const known = await client.query<{ id: string; outcome: 'duplicate' | 'removed' }>(
      `SELECT notification_id AS id, 'duplicate' AS outcome FROM notifications WHERE notification_id = ANY($1)
       UNION ALL SELECT notification_id, 'removed' FROM removed WHERE notification_id = ANY($1)`,
      [ids],
    );
    for (const row of known.rows) outcomes.set(row.id, row.outcome);
    const marks = await client.query<{
      user_id: string;
      notification_id: string;
      kind: 'read' | 'archive';
      value: boolean;
      dt: string;
    }>('SELECT user_id, notification_id, kind, value, dt FROM marks WHERE notification_id = ANY($1)', [ids]);
    // Only the person's own marks: notification ids are deterministic, anyone can name another's.
    const markOf = (n: Notification, kind: 'read' | 'archive') =>
      marks.rows.find(
        (m) => m.notification_id === n.notification_id && m.user_id === n.recipient_id && m.kind === kind,
      );

    const rows: unknown[][] = [];
    const deltas = new Map<string, { seq: number; added: number; unread: number; unseen: number }>();
    for (const item of fresh) {
      const n = item.notification;
      if (outcomes.has(n.notification_id)) continue;
      const person = people.get(n.recipient_id);
      if (!person) throw new Error(`people row of ${n.recipient_id} vanished`);
      if (person.erased_at !== null && item.eventMs <= Number(person.erased_at)) {
        outcomes.set(n.notification_id, 'erased');
        continue;
      }
      outcomes.set(n.notification_id, 'stored');
      let read = false;
      let readDt = 0;
      if (item.eventMs <= Number(person.read_until)) {
        read = true;
        readDt = Number(person.read_until_dt);
      }
      const readMark = markOf(n, 'read');
      if (readMark && Number(readMark.dt) > readDt) {
        read = readMark.value;
        readDt = Number(readMark.dt);
      }
      const archiveMark = markOf(n, 'archive');
      const archived = archiveMark?.value ?? false;
      const delta = deltas.get(n.recipient_id) ?? { seq: Number(person.seq), added: 0, unread: 0, unseen: 0 };
      delta.seq += 1;
      delta.added += 1;
      if (!archived && !read) delta.unread += 1;
      if (!archived && item.eventMs > Number(person.seen_until)) delta.unseen += 1;
      deltas.set(n.recipient_id, delta);
      rows.push([
        n.notification_id,
        n.recipient_id,
        delta.seq,
        n.event_id,
        entryIdOf(item, settings.bundleWindowMs),
        item.eventMs,
        n.category,
        sectionOf(n.priority, settings),
        item.folded,
        JSON.stringify(n),
        read,
        readDt,
        archived,
        archiveMark ? Number(archiveMark.dt) : 0,
      ]);
    }
    if (rows.length === 0) return outcomes;
    const column = (i: number) => rows.map((r) => r[i]);
    await client.query(
      `INSERT INTO notifications (notification_id, user_id, seq, event_id, entry_id, event_ms, category,
         section, folded, payload, read, read_dt, archived, archived_dt)
       SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[],
         $7::text[], $8::text[], $9::boolean[], $10::jsonb[], $11::boolean[], $12::bigint[], $13::boolean[],
         $14::bigint[])`,
      Array.from({ length: 14 }, (_, i) => column(i)),
    );
    if (marks.rowCount) {
      // Other people's marks on these ids go too: they can never apply.
      await client.query('DELETE FROM marks WHERE notification_id = ANY($1)', [
        marks.rows.map((m) => m.notification_id),
      ]);
    }
    const users = [...deltas.keys()];
    const d = users.map((u) => deltas.get(u)!);
    await client.query(
      `UPDATE people p SET seq = d.seq, total = p.total + d.added, unread = p.unread + d.unread,
         unseen = p.unseen + d.unseen
       FROM unnest($1::text[], $2::bigint[], $3::int[], $4::int[], $5::int[]) AS d(user_id, seq, added, unread, unseen)
       WHERE p.user_id = d.user_id`,
      [users, d.map((x) => x.seq), d.map((x) => x.added), d.map((x) => x.unread), d.map((x) => x.unseen)],
    );
    for (const userId of users) {
      const total = (people.get(userId)?.total ?? 0) + (deltas.get(userId)?.added ?? 0);
      if (total <= settings.maxPerPerson) continue;
      await client.query(
        `WITH evicted AS (
           DELETE FROM notifications WHERE notification_id IN (
             SELECT notification_id FROM notifications WHERE user_id = $1
             ORDER BY read DESC, event_ms, notification_id LIMIT $2)
           RETURNING notification_id)
         INSERT INTO removed (notification_id, removed_at) SELECT notification_id, $3 FROM evicted
         ON CONFLICT DO NOTHING`,
        [userId, total - settings.maxPerPerson, now],
      );
      await recount(client, userId);
    }
    await announce(client, settings.channel, users);
    return outcomes;
  });
}

/**
 * Applies a person's read / unread / seen / archive / unarchive change, from this datacenter's API
 * or from notify.inbox-state of either datacenter; applying the same change twice changes nothing.
 */
/**
 * The notifications a read mark (applied with meta.dt `dt`) turned read, with their events: for the
 * delivery trail. Every datacenter's inbox finds the same ones, whether the mark came from its own
 * API (applied before the record was consumed) or from the other datacenter.
 */
export async function readByMark(
  db: pg.Pool,
  change: Pick<StateChange, 'userId' | 'notificationIds' | 'upTo' | 'dt'>,
): Promise<{ notificationId: string; eventId: string }[]> {
  const { rows } = await db.query<{ notification_id: string; event_id: string }>(
    `SELECT notification_id, event_id FROM notifications
     WHERE user_id = $1 AND read AND read_dt = $2
       AND (notification_id = ANY($3) OR event_ms <= $4)`,
    [change.userId, change.dt, change.notificationIds, change.upTo ?? -1],
  );
  return rows.map((r) => ({ notificationId: r.notification_id, eventId: r.event_id }));
}

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
           ON CONFLICT (user_id, notification_id, kind) DO UPDATE SET value = excluded.value, dt = excluded.dt
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
    await announce(client, settings.channel, [userId]);
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
    await announce(client, settings.channel, [userId]);
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
  // Groups carry ids and actor names only; the newest payload is fetched for the page's entries.
  const { rows } = await db.query<{
    entry_id: string;
    latest: string;
    count: number;
    unread: number;
    ids: string[];
    event_ids: string[];
    agents: (string | null)[];
    payload: Notification;
  }>(
    `WITH page AS (
       SELECT entry_id, max(event_ms) AS latest, count(*)::int AS count,
              count(*) FILTER (WHERE NOT read)::int AS unread,
              array_agg(notification_id ORDER BY event_ms DESC, notification_id DESC) AS ids,
              array_agg(event_id ORDER BY event_ms DESC, notification_id DESC) AS event_ids,
              (array_agg(payload->'agent'->>'name' ORDER BY event_ms DESC, notification_id DESC))[1:20] AS agents
       FROM notifications
       WHERE user_id = $1 AND NOT archived
         AND ($2::text IS NULL OR category = $2) AND ($3::text IS NULL OR section = $3)
       GROUP BY entry_id
       HAVING (NOT $4 OR bool_or(NOT read))
         AND ($5::bigint IS NULL OR (max(event_ms), entry_id) < ($5, $6::text))
       ORDER BY latest DESC, entry_id DESC
       LIMIT $7)
     SELECT page.*, n.payload FROM page JOIN notifications n ON n.notification_id = page.ids[1]
     ORDER BY page.latest DESC, page.entry_id DESC`,
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
    const actors: string[] = [];
    for (const name of r.agents) {
      if (name && !actors.includes(name) && actors.length < 3) actors.push(name);
    }
    return {
      entryId: r.entry_id,
      kind: r.entry_id.slice(0, r.entry_id.indexOf(':')) as Entry['kind'],
      latest: Number(r.latest),
      count: r.count,
      unread: r.unread,
      notification: r.payload,
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
    `DELETE FROM marks WHERE (user_id, notification_id, kind) IN (
       SELECT user_id, notification_id, kind FROM marks WHERE dt < $1 LIMIT $2)`,
    [now - markerRetentionMs, batch],
  );
  return deleted;
}
