-- The router's own state: people materialized from notify.user and notify.preference-change, the
-- events already fanned out, and the counters behind the throttle and the chatty-type guard.
-- Times are timestamptz; the code works in ms since the epoch and binds Dates.

-- One row per person from the compacted notify.user stream. A notify.user tombstone deletes the
-- person's rows from users (cascading to user_preferences), preference_changes,
-- email_frequency_changes and throttle_counts, in one transaction.
CREATE TABLE users (
  user_id         text PRIMARY KEY,
  email           text,
  locale          text NOT NULL,
  timezone        text NOT NULL,
  last_active     timestamptz,
  email_frequency text NOT NULL CHECK (email_frequency IN ('never', 'instant', 'daily', 'weekly')),
  muted_agents    text[] NOT NULL DEFAULT '{}',
  -- meta.dt of the applied record: upserts only replace an older record, so a late copy mirrored
  -- from the other datacenter cannot roll a person back.
  record_dt       timestamptz NOT NULL
);

-- The preferences of the person's latest notify.user record: replaced as a whole with it.
CREATE TABLE user_preferences (
  user_id  text NOT NULL REFERENCES users ON DELETE CASCADE,
  category text NOT NULL,
  channel  text NOT NULL CHECK (channel IN ('web', 'email', 'push')),
  enabled  boolean NOT NULL,
  PRIMARY KEY (user_id, category, channel)
);

-- notify.preference-change on top of notify.user; a later notify.user record does not undo these
-- (see recipient.ts). One row per (person, channel, category or NULL for the whole channel), kept
-- only if newer: ON CONFLICT (user_id, channel, category) DO UPDATE ... WHERE excluded.changed_at
-- >= preference_changes.changed_at. No foreign key: a change may arrive before the person does.
CREATE TABLE preference_changes (
  user_id    text NOT NULL,
  channel    text NOT NULL CHECK (channel IN ('web', 'email', 'push')),
  category   text,
  enabled    boolean NOT NULL,
  changed_at timestamptz NOT NULL,
  reason     text NOT NULL,
  CONSTRAINT preference_changes_key UNIQUE NULLS NOT DISTINCT (user_id, channel, category)
);

-- The latest email frequency a notify.preference-change set, same newer-wins rule.
CREATE TABLE email_frequency_changes (
  user_id         text PRIMARY KEY,
  email_frequency text NOT NULL CHECK (email_frequency IN ('never', 'instant', 'daily', 'weekly')),
  changed_at      timestamptz NOT NULL
);

-- Events whose notifications are durable in Kafka (inserted after the produce is acknowledged).
-- Retention must outlast the notify.event topic's retention, or a replay from its start would fan
-- old events out again: delete rows older than that in small batches (processed_events_age).
CREATE TABLE processed_events (
  event_id     text PRIMARY KEY,
  processed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX processed_events_age ON processed_events (processed_at);

-- Per-recipient throttle: notifications admitted per (person, category, window of event time).
-- Increments are added with ON CONFLICT DO UPDATE SET count = throttle_counts.count + excluded.count.
-- Rows whose window ended are useless: delete by throttle_counts_age once older than the longest
-- throttle window (plus the longest lag worth counting).
CREATE TABLE throttle_counts (
  recipient_id text NOT NULL,
  category     text NOT NULL,
  window_start timestamptz NOT NULL,
  count        integer NOT NULL CHECK (count >= 0),
  PRIMARY KEY (recipient_id, category, window_start)
);
CREATE INDEX throttle_counts_age ON throttle_counts (window_start);

-- Chatty-type guard: recipients reached per (event type, window of event time), held events
-- included; shared by all router instances. Same increment and clean-up as throttle_counts.
CREATE TABLE type_volume (
  event_type   text NOT NULL,
  window_start timestamptz NOT NULL,
  fan_out      bigint NOT NULL CHECK (fan_out >= 0),
  PRIMARY KEY (event_type, window_start)
);
CREATE INDEX type_volume_age ON type_volume (window_start);
