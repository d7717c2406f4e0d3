/**
 * The router's Postgres state (migrations/0001_init.sql): the reads a fetched batch of events needs,
 * one statement for the whole batch, the writes that follow once the batch's records are durable,
 * and the materialization of notify.user and notify.preference-change.
 *
 * Times are timestamptz in the tables and ms since the epoch here. Keys travel as parallel arrays
 * through unnest(), so every query is one statement with a fixed text whatever the batch size, and
 * each probes a primary key or unique index (the plans are checked in test/integration/router.test.ts).
 */
import type pg from 'pg';
import { newestPerKey, upsertVersion } from '../../libs/convergence/version.ts';
import { inTransaction } from '../../libs/db/transaction.ts';
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

/**
 * Everything a fetched batch of events reads, in one statement: one round trip and one pooled
 * connection per batch, where four queries in parallel took four connections and, with many
 * partitions' batches at once, queued for the pool. Each part probes a primary key or unique index
 * and comes back as one aggregated column ($1 event ids; $2 recipient ids; $3–$5 throttle keys;
 * $6–$7 type-volume keys).
 */
export const BATCH_LOOKUP = `
  SELECT
    (SELECT coalesce(array_agg(p.event_id), '{}') FROM processed_events p
     WHERE p.event_id = ANY($1::text[])) AS processed,
    (SELECT coalesce(json_agg(json_build_object(
              'user_id', u.user_id, 'email', u.email, 'locale', u.locale, 'timezone', u.timezone,
              'last_active', (extract(epoch FROM u.last_active) * 1000)::float8,
              'email_frequency', u.email_frequency, 'muted_agents', u.muted_agents,
              'frequency_change', (SELECT f.email_frequency FROM email_frequency_changes f WHERE f.user_id = u.user_id),
              'preferences', u.preferences,
              'changes', COALESCE((SELECT json_agg(json_build_object('category', c.category, 'channel', c.channel,
                                                                     'enabled', c.enabled,
                                                                     'changed_at', extract(epoch FROM c.changed_at) * 1000))
                                   FROM preference_changes c WHERE c.user_id = u.user_id), '[]'))), '[]')
     FROM users u
     WHERE u.user_id = ANY($2::text[]) AND NOT u.erased) AS recipients,
    (SELECT coalesce(json_agg(json_build_object(
              'recipientId', t.recipient_id, 'category', t.category,
              'windowStart', (extract(epoch FROM t.window_start) * 1000)::float8, 'count', t.count)), '[]')
     FROM unnest($3::text[], $4::text[], $5::float8[]) AS k(recipient_id, category, window_ms)
     JOIN throttle_counts t ON t.recipient_id = k.recipient_id AND t.category = k.category
                           AND t.window_start = to_timestamp(k.window_ms / 1000)) AS throttle_counts,
    (SELECT coalesce(json_agg(json_build_object(
              'type', v.event_type, 'windowStart', (extract(epoch FROM v.window_start) * 1000)::float8,
              'fanOut', v.fan_out)), '[]')
     FROM unnest($6::text[], $7::float8[]) AS k(event_type, window_ms)
     JOIN type_volume v ON v.event_type = k.event_type
                       AND v.window_start = to_timestamp(k.window_ms / 1000)) AS type_volumes`;

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

/**
 * An erasure and a preference change of one person take the person's lock first, so each sees the
 * other's rows (neither leaves a change behind the marker). Bulk upserts need no such lock: a
 * person, preferences included, is one users row, and the statement's row lock decides it.
 */
const LOCK_PERSON = "SELECT pg_advisory_xact_lock(hashtext('router.person:' || $1))";

const VERSION_IS_NEWER = `(users.record_dt, users.erased, users.record_id COLLATE "C")
  < (excluded.record_dt, excluded.erased, excluded.record_id COLLATE "C")`;

/**
 * A fetched batch of people in one statement, each replacing the stored row only if newer; rows
 * are locked in user_id order, so two batches sharing people cannot deadlock. The batch travels as
 * one JSON text: json_to_recordset parses it in Postgres for less than binding parallel arrays costs
 * (pg escapes every array element in JavaScript), and COPY into a staging table gained too little to
 * pay for its extra statements (docs/architecture.md, "Rebuilds"). Most people have no preferences
 * and mute no one: their empty lists are left out of the JSON and stand in here, because converting
 * an empty JSON list to jsonb or text[] row by row cost Postgres about a fifth of the statement.
 */
const UPSERT_USERS = `
  INSERT INTO users (user_id, email, locale, timezone, last_active, email_frequency, muted_agents, preferences,
                     record_dt, record_id)
  SELECT user_id, email, locale, timezone, to_timestamp(last_active / 1000), email_frequency,
         coalesce(muted_agents, '{}'), coalesce(preferences, '[]'), to_timestamp(record_dt / 1000), record_id
  FROM json_to_recordset($1::json) AS x(user_id text, email text, locale text, timezone text,
    last_active float8, email_frequency text, muted_agents text[], preferences jsonb, record_dt float8, record_id text)
  ORDER BY user_id
  ON CONFLICT (user_id) DO UPDATE SET
    email = excluded.email, locale = excluded.locale, timezone = excluded.timezone,
    last_active = excluded.last_active, email_frequency = excluded.email_frequency,
    muted_agents = excluded.muted_agents, preferences = excluded.preferences, record_dt = excluded.record_dt,
    record_id = excluded.record_id, erased = false
  WHERE ${VERSION_IS_NEWER}`;

/** The marker replaces the person unless a newer record already did. */
const ERASE_USER = `
  INSERT INTO users (user_id, record_dt, record_id, erased) VALUES ($1, to_timestamp($2::float8 / 1000), '', true)
  ON CONFLICT (user_id) DO UPDATE SET
    email = NULL, locale = NULL, timezone = NULL, last_active = NULL, email_frequency = NULL,
    muted_agents = '{}', preferences = '[]', record_dt = excluded.record_dt, record_id = '', erased = true
  WHERE ${VERSION_IS_NEWER}`;

/**
 * What the person changed up to the erasure goes (their preferences went with the marker, if it
 * won), and the throttle counters go whatever their time: they only slow mail down.
 */
const FORGET_PERSON = `
  WITH changes AS (DELETE FROM preference_changes WHERE user_id = $1 AND changed_at <= to_timestamp($2::float8 / 1000)),
  frequency AS (DELETE FROM email_frequency_changes WHERE user_id = $1 AND changed_at <= to_timestamp($2::float8 / 1000))
  DELETE FROM throttle_counts WHERE recipient_id = $1`;

/** A change no newer than the person's erasure is as erased as they are. */
const APPLY_PREFERENCE_CHANGE = `
  WITH alive AS (
    SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM users
                               WHERE user_id = $1 AND erased AND record_dt >= to_timestamp($5::float8 / 1000))),
  flip AS (
    INSERT INTO preference_changes (user_id, channel, category, enabled, changed_at, reason, record_id)
    SELECT $1, $2, $3, $4, to_timestamp($5::float8 / 1000), $6, $8 FROM alive
    ON CONFLICT ON CONSTRAINT preference_changes_key DO UPDATE SET
      enabled = excluded.enabled, changed_at = excluded.changed_at, reason = excluded.reason,
      record_id = excluded.record_id
    WHERE (preference_changes.changed_at, preference_changes.record_id COLLATE "C")
        < (excluded.changed_at, excluded.record_id COLLATE "C"))
  INSERT INTO email_frequency_changes (user_id, email_frequency, changed_at, record_id)
  SELECT $1, $7, to_timestamp($5::float8 / 1000), $8 FROM alive WHERE $7::text IS NOT NULL
  ON CONFLICT (user_id) DO UPDATE SET
    email_frequency = excluded.email_frequency, changed_at = excluded.changed_at, record_id = excluded.record_id
  WHERE (email_frequency_changes.changed_at, email_frequency_changes.record_id COLLATE "C")
      < (excluded.changed_at, excluded.record_id COLLATE "C")`;

const PRUNE_SLICE = 10_000;
const PRUNE = [
  `DELETE FROM processed_events WHERE event_id IN (
     SELECT event_id FROM processed_events WHERE processed_at < to_timestamp($1::float8 / 1000) LIMIT $2)`,
  `DELETE FROM throttle_counts WHERE (recipient_id, category, window_start) IN (
     SELECT recipient_id, category, window_start FROM throttle_counts
     WHERE window_start < to_timestamp($1::float8 / 1000) LIMIT $2)`,
  `DELETE FROM type_volume WHERE (event_type, window_start) IN (
     SELECT event_type, window_start FROM type_volume WHERE window_start < to_timestamp($1::float8 / 1000) LIMIT $2)`,
];

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

/**
 * A record's preferences with one entry per (category, channel), the last one given winning. Most
 * people have none or one: no Map for them.
 */
function onePerChannel(preferences: readonly Preference[]): readonly Preference[] {
  if (preferences.length < 2) return preferences;
  const byChannel = new Map<string, Preference>();
  for (const p of preferences) byChannel.set(`${p.category}\u0000${p.channel}`, p);
  return byChannel.size === preferences.length ? preferences : [...byChannel.values()];
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
  /** What a fetched batch needs (prefetch.ts batchKeys), in one statement. */
  loadBatch(keys: {
    eventIds: readonly string[];
    recipientIds: readonly string[];
    throttleKeys: readonly ThrottleKey[];
    typeVolumeKeys: readonly TypeVolumeKey[];
  }): Promise<BatchState>;
  /** One transaction: the events are done, the counters grow by what the batch added. */
  recordBatch(outcome: BatchOutcome): Promise<void>;
  /**
   * Materializes notify.user records in one statement, each replacing the stored person only if it
   * is newer (libs/convergence/version.ts): a late mirrored copy, a retry or a replay changes nothing.
   */
  applyUsers(users: readonly NotifyUser[]): Promise<void>;
  /**
   * Forgets everything the router holds about the person up to `erasedAt` and leaves a marker that
   * every older record of theirs loses to.
   */
  eraseUser(userId: string, erasedAt: number): Promise<void>;
  applyPreferenceChange(change: NotifyPreferenceChange): Promise<void>;
  /**
   * Forgets processed events and counter windows older than `before` (ms), a slice at a time so no
   * statement holds many locks; returns how many rows went.
   */
  prune(before: number): Promise<number>;
}

export function createRouterStore(pool: pg.Pool): RouterStore {
  return {
    async loadBatch({ eventIds, recipientIds, throttleKeys, typeVolumeKeys }) {
      if (eventIds.length + recipientIds.length + throttleKeys.length + typeVolumeKeys.length === 0)
        return { processed: [], recipients: new Map(), throttleCounts: [], typeVolumes: [] };
      const { rows } = await pool.query<{
        processed: string[];
        recipients: RecipientRow[];
        throttle_counts: ThrottleCount[];
        type_volumes: TypeVolume[];
      }>(BATCH_LOOKUP, [
        eventIds,
        recipientIds,
        ...throttleParams(throttleKeys),
        ...typeVolumeParams(typeVolumeKeys),
      ]);
      const state = rows[0]!;
      return {
        processed: state.processed,
        recipients: new Map(state.recipients.map((row) => [row.user_id, toRecipient(row)])),
        throttleCounts: state.throttle_counts,
        typeVolumes: state.type_volumes,
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

    async applyUsers(users) {
      const newest = newestPerKey(
        users,
        (u) => u.user_id,
        (u) => upsertVersion(u.meta),
      );
      if (newest.length === 0) return;
      const people = newest.map((u) => ({
        user_id: u.user_id,
        email: u.email,
        locale: u.locale,
        timezone: u.timezone,
        last_active: u.last_active,
        email_frequency: u.email_frequency,
        // JSON.stringify leaves undefined out: the statement puts the empty list back.
        muted_agents: u.muted_agents.length > 0 ? u.muted_agents : undefined,
        preferences: u.preferences.length > 0 ? onePerChannel(u.preferences) : undefined,
        record_dt: u.meta.dt,
        record_id: u.meta.id,
      }));
      // One statement is one transaction: no BEGIN and COMMIT round trips.
      await pool.query(UPSERT_USERS, [JSON.stringify(people)]);
    },

    async eraseUser(userId, erasedAt) {
      await inTransaction(pool, async (client) => {
        await client.query(LOCK_PERSON, [userId]);
        await client.query(ERASE_USER, [userId, erasedAt]);
        await client.query(FORGET_PERSON, [userId, erasedAt]);
      });
    },

    async prune(before) {
      let total = 0;
      for (const statement of PRUNE) {
        for (;;) {
          const { rowCount } = await pool.query(statement, [before, PRUNE_SLICE]);
          total += rowCount ?? 0;
          if ((rowCount ?? 0) < PRUNE_SLICE) break;
        }
      }
      return total;
    },

    async applyPreferenceChange(change) {
      await inTransaction(pool, async (client) => {
        await client.query(LOCK_PERSON, [change.user_id]);
        await client.query(APPLY_PREFERENCE_CHANGE, [
          change.user_id,
          change.channel,
          change.category,
          change.enabled,
          change.meta.dt,
          change.reason,
          change.email_frequency,
          change.meta.id,
        ]);
      });
    },
  };
}
