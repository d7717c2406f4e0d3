/**
 * The router's Postgres state (migrations/0001_init.sql): the reads a fetched batch of events needs,
 * each one query for the whole batch, the writes that follow once the batch's records are durable,
 * and the materialization of notify.user and notify.preference-change.
 *
 * Times are timestamptz in the tables and ms since the epoch here. Keys travel as parallel arrays
 * through unnest(), so every query is one statement with a fixed text whatever the batch size, and
 * each probes a primary key or unique index (the plans are checked in test/integration/router.test.ts).
 */
import type pg from 'pg';
import type {
  Channel,
  EmailFrequency,
  NotifyPreferenceChange,
  NotifyUser,
  Preference,
} from '../../libs/schemas/types.generated.ts';
import type { TypeVolume, TypeVolumeKey } from './chatty-guard.ts';
import type { PreferenceChange, Recipient } from './recipient.ts';
import type { ThrottleCount, ThrottleKey } from './throttle.ts';

export const BATCH_QUERIES = {
  processed: 'SELECT event_id FROM processed_events WHERE event_id = ANY($1::text[])',
  recipients: `
    SELECT u.user_id, u.email, u.locale, u.timezone,
           (extract(epoch FROM u.last_active) * 1000)::float8 AS last_active,
           u.email_frequency, u.muted_agents,
           (SELECT f.email_frequency FROM email_frequency_changes f WHERE f.user_id = u.user_id) AS frequency_change,
           COALESCE((SELECT json_agg(json_build_object('category', p.category, 'channel', p.channel,
                                                       'enabled', p.enabled))
                     FROM user_preferences p WHERE p.user_id = u.user_id), '[]') AS preferences,
           COALESCE((SELECT json_agg(json_build_object('category', c.category, 'channel', c.channel,
                                                       'enabled', c.enabled,
                                                       'changed_at', extract(epoch FROM c.changed_at) * 1000))
                     FROM preference_changes c WHERE c.user_id = u.user_id), '[]') AS changes
    FROM users u
    WHERE u.user_id = ANY($1::text[])`,
  throttleCounts: `
    SELECT t.recipient_id, t.category, (extract(epoch FROM t.window_start) * 1000)::float8 AS window_start, t.count
    FROM unnest($1::text[], $2::text[], $3::float8[]) AS k(recipient_id, category, window_ms)
    JOIN throttle_counts t ON t.recipient_id = k.recipient_id AND t.category = k.category
                          AND t.window_start = to_timestamp(k.window_ms / 1000)`,
  typeVolumes: `
    SELECT v.event_type, (extract(epoch FROM v.window_start) * 1000)::float8 AS window_start, v.fan_out
    FROM unnest($1::text[], $2::float8[]) AS k(event_type, window_ms)
    JOIN type_volume v ON v.event_type = k.event_type AND v.window_start = to_timestamp(k.window_ms / 1000)`,
} as const;

const RECORD_BATCH = `
  WITH processed AS (
    INSERT INTO processed_events (event_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING),
  counts AS (
    INSERT INTO throttle_counts (recipient_id, category, window_start, count)
    SELECT r, c, to_timestamp(w / 1000), n FROM unnest($2::text[], $3::text[], $4::float8[], $5::int[]) AS k(r, c, w, n)
    ON CONFLICT (recipient_id, category, window_start) DO UPDATE SET count = throttle_counts.count + excluded.count)
  INSERT INTO type_volume (event_type, window_start, fan_out)
  SELECT t, to_timestamp(w / 1000), n FROM unnest($6::text[], $7::float8[], $8::bigint[]) AS k(t, w, n)
  ON CONFLICT (event_type, window_start) DO UPDATE SET fan_out = type_volume.fan_out + excluded.fan_out`;

export function throttleParams(keys: readonly ThrottleKey[]): unknown[] {
  return [keys.map((k) => k.recipientId), keys.map((k) => k.category), keys.map((k) => k.windowStart)];
}

export function typeVolumeParams(keys: readonly TypeVolumeKey[]): unknown[] {
  return [keys.map((k) => k.type), keys.map((k) => k.windowStart)];
}

interface RecipientRow {
  user_id: string;
  email: string | null;
  locale: string;
  timezone: string;
  last_active: number | null;
  email_frequency: EmailFrequency;
  muted_agents: string[];
  frequency_change: EmailFrequency | null;
  preferences: Preference[];
  changes: { category: string | null; channel: Channel; enabled: boolean; changed_at: number }[];
}

function toRecipient(row: RecipientRow): Recipient {
  return {
    userId: row.user_id,
    email: row.email,
    locale: row.locale,
    timezone: row.timezone,
    lastActive: row.last_active,
    emailFrequency: row.email_frequency,
    preferences: row.preferences,
    mutedAgents: row.muted_agents,
    preferenceChanges: row.changes.map(
      (c): PreferenceChange => ({
        category: c.category,
        channel: c.channel,
        enabled: c.enabled,
        changedAt: c.changed_at,
      }),
    ),
    emailFrequencyChange: row.frequency_change,
  };
}

export interface BatchState {
  readonly processed: readonly string[];
  readonly recipients: ReadonlyMap<string, Recipient>;
  readonly throttleCounts: readonly ThrottleCount[];
  readonly typeVolumes: readonly TypeVolume[];
}

export interface BatchOutcome {
  readonly processed: readonly string[];
  readonly throttle: readonly ThrottleCount[];
  readonly volumes: readonly TypeVolume[];
}

/**
 * Sorted so that two batches adding to the same rows lock them in the same order (no deadlock).
 * Each key is computed once: a comparator building keys costs O(n log n) of them per batch.
 */
function byText<T>(items: readonly T[], text: (item: T) => string): T[] {
  return items
    .map((item) => ({ item, key: text(item) }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map((e) => e.item);
}

export interface RouterStore {
  processedAmong(eventIds: readonly string[]): Promise<string[]>;
  loadBatch(keys: {
    recipientIds: readonly string[];
    throttleKeys: readonly ThrottleKey[];
    typeVolumeKeys: readonly TypeVolumeKey[];
  }): Promise<Omit<BatchState, 'processed'>>;
  /** One transaction: the events are done, the counters grow by what the batch added. */
  recordBatch(outcome: BatchOutcome): Promise<void>;
  /** Replaces the person unless the stored record is newer (a late mirrored copy must not roll back). */
  upsertUser(user: NotifyUser): Promise<void>;
  /** Everything the router holds about the person, in one statement. */
  eraseUser(userId: string): Promise<void>;
  applyPreferenceChange(change: NotifyPreferenceChange): Promise<void>;
}

export function createRouterStore(pool: pg.Pool): RouterStore {
  return {
    async processedAmong(eventIds) {
      if (eventIds.length === 0) return [];
      const { rows } = await pool.query<{ event_id: string }>(BATCH_QUERIES.processed, [eventIds]);
      return rows.map((r) => r.event_id);
    },

    async loadBatch({ recipientIds, throttleKeys, typeVolumeKeys }) {
      const [people, counts, volumes] = await Promise.all([
        recipientIds.length === 0
          ? { rows: [] as RecipientRow[] }
          : pool.query<RecipientRow>(BATCH_QUERIES.recipients, [recipientIds]),
        throttleKeys.length === 0
          ? { rows: [] }
          : pool.query<{ recipient_id: string; category: string; window_start: number; count: number }>(
              BATCH_QUERIES.throttleCounts,
              throttleParams(throttleKeys),
            ),
        typeVolumeKeys.length === 0
          ? { rows: [] }
          : pool.query<{ event_type: string; window_start: number; fan_out: string }>(
              BATCH_QUERIES.typeVolumes,
              typeVolumeParams(typeVolumeKeys),
            ),
      ]);
      return {
        recipients: new Map(people.rows.map((row) => [row.user_id, toRecipient(row)])),
        throttleCounts: counts.rows.map((r) => ({
          recipientId: r.recipient_id,
          category: r.category,
          windowStart: r.window_start,
          count: r.count,
        })),
        typeVolumes: volumes.rows.map((r) => ({
          type: r.event_type,
          windowStart: r.window_start,
          fanOut: Number(r.fan_out),
        })),
      };
    },

    async recordBatch({ processed, throttle, volumes }) {
      if (processed.length + throttle.length + volumes.length === 0) return;
      const counts = byText(throttle, (c) => JSON.stringify([c.recipientId, c.category, c.windowStart]));
      const fanOuts = byText(volumes, (v) => JSON.stringify([v.type, v.windowStart]));
      // One statement is one transaction and one round trip: the events are marked done exactly
      // when the counters grow. Each part writes its own table, so no row is touched twice; every
      // batch runs the same statement over sorted keys, so shared rows are locked in one order.
      await pool.query(RECORD_BATCH, [
        [...processed].sort(),
        ...throttleParams(counts),
        counts.map((c) => c.count),
        ...typeVolumeParams(fanOuts),
        fanOuts.map((v) => v.fanOut),
      ]);
    },

    async upsertUser(user) {
      const preferences = [
        ...new Map(user.preferences.map((p) => [`${p.category}\u0000${p.channel}`, p])).values(),
      ];
      // Data-modifying CTEs see one snapshot: the old preferences not in the new set are deleted
      // and the new set is upserted, touching disjoint rows, only if the person was replaced.
      await pool.query(
        `WITH person AS (
           INSERT INTO users (user_id, email, locale, timezone, last_active, email_frequency, muted_agents, record_dt)
           VALUES ($1, $2, $3, $4, to_timestamp($5::float8 / 1000), $6, $7, to_timestamp($8::float8 / 1000))
           ON CONFLICT (user_id) DO UPDATE SET
             email = excluded.email, locale = excluded.locale, timezone = excluded.timezone,
             last_active = excluded.last_active, email_frequency = excluded.email_frequency,
             muted_agents = excluded.muted_agents, record_dt = excluded.record_dt
           WHERE users.record_dt <= excluded.record_dt
           RETURNING user_id),
         wanted AS (SELECT * FROM unnest($9::text[], $10::text[], $11::bool[]) AS p(category, channel, enabled)),
         dropped AS (
           DELETE FROM user_preferences up USING person
           WHERE up.user_id = person.user_id
             AND NOT EXISTS (SELECT 1 FROM wanted w WHERE w.category = up.category AND w.channel = up.channel))
         INSERT INTO user_preferences (user_id, category, channel, enabled)
         SELECT person.user_id, w.category, w.channel, w.enabled FROM person, wanted w
         ON CONFLICT (user_id, category, channel) DO UPDATE SET enabled = excluded.enabled`,
        [
          user.user_id,
          user.email,
          user.locale,
          user.timezone,
          user.last_active,
          user.email_frequency,
          user.muted_agents,
          user.meta.dt,
          preferences.map((p) => p.category),
          preferences.map((p) => p.channel),
          preferences.map((p) => p.enabled),
        ],
      );
    },

    async eraseUser(userId) {
      await pool.query(
        `WITH a AS (DELETE FROM users WHERE user_id = $1),
              b AS (DELETE FROM preference_changes WHERE user_id = $1),
              c AS (DELETE FROM email_frequency_changes WHERE user_id = $1)
         DELETE FROM throttle_counts WHERE recipient_id = $1`,
        [userId],
      );
    },

    async applyPreferenceChange(change) {
      await pool.query(
        `WITH flip AS (
           INSERT INTO preference_changes (user_id, channel, category, enabled, changed_at, reason)
           VALUES ($1, $2, $3, $4, to_timestamp($5::float8 / 1000), $6)
           ON CONFLICT ON CONSTRAINT preference_changes_key DO UPDATE SET
             enabled = excluded.enabled, changed_at = excluded.changed_at, reason = excluded.reason
           WHERE excluded.changed_at >= preference_changes.changed_at)
         INSERT INTO email_frequency_changes (user_id, email_frequency, changed_at)
         SELECT $1, $7, to_timestamp($5::float8 / 1000) WHERE $7::text IS NOT NULL
         ON CONFLICT (user_id) DO UPDATE SET email_frequency = excluded.email_frequency, changed_at = excluded.changed_at
         WHERE excluded.changed_at >= email_frequency_changes.changed_at`,
        [
          change.user_id,
          change.channel,
          change.category,
          change.enabled,
          change.meta.dt,
          change.reason,
          change.email_frequency,
        ],
      );
    },
  };
}
