-- The email service's digest side: mail held back for a bundle or a digest, bundling state, and
-- the ids already turned into mail. The sender side's tables are in 0002_sender.sql.
-- Times are timestamptz; the code works in ms since the epoch and binds Dates.

-- One row per mail waiting to go out: an instant bundle for (recipient, bundle key), or a person's
-- next daily or weekly digest. "Who is due now" is a range scan of pending_mail_due:
--   SELECT ... FROM pending_mail WHERE due_at <= $now ORDER BY due_at LIMIT $n FOR UPDATE SKIP LOCKED
-- No GROUP BY over the items (Echo's digest cron paid for that with temp tables and file sorts):
-- the items of a due mail are fetched by its key, through pending_items' primary key.
-- group_key: the bundle key for bundles, '' for digests (a person has one digest per frequency).
CREATE TABLE pending_mail (
  recipient_id text NOT NULL,
  kind         text NOT NULL CHECK (kind IN ('bundle', 'daily', 'weekly')),
  group_key    text NOT NULL,
  due_at       timestamptz NOT NULL,
  -- Address, locale and timezone of the latest item: a digest goes to where the person is now.
  email        text NOT NULL,
  locale       text NOT NULL,
  timezone     text NOT NULL,
  PRIMARY KEY (recipient_id, kind, group_key)
);
CREATE INDEX pending_mail_due ON pending_mail (due_at);

-- The notifications held for a pending mail, as the notify.email record carried them. Deleted with
-- their mail once its notify.email-send record is acknowledged by Kafka (same transaction as the
-- pending_mail row and the emitted_notifications rows).
CREATE TABLE pending_items (
  recipient_id    text NOT NULL,
  kind            text NOT NULL,
  group_key       text NOT NULL,
  notification_id text NOT NULL,
  event_time      timestamptz NOT NULL,
  category        text NOT NULL,
  payload         jsonb NOT NULL,
  PRIMARY KEY (recipient_id, kind, group_key, notification_id),
  FOREIGN KEY (recipient_id, kind, group_key) REFERENCES pending_mail ON DELETE CASCADE
);
-- A notification is held at most once, whatever mail it waits for: a redelivered notify.email
-- record conflicts here and is ignored (ON CONFLICT (notification_id) DO NOTHING).
CREATE UNIQUE INDEX pending_items_notification ON pending_items (notification_id);

-- Echo-style bundling per (recipient, bundle key): when the last mail went out. The due time of a
-- held bundle is its pending_mail row. Settled rows (interval over, nothing pending) behave like no
-- row: delete them in small batches through bundle_state_age.
CREATE TABLE bundle_state (
  recipient_id text NOT NULL,
  bundle_key   text NOT NULL,
  last_sent_at timestamptz NOT NULL,
  PRIMARY KEY (recipient_id, bundle_key)
);
CREATE INDEX bundle_state_age ON bundle_state (last_sent_at);

-- Digest side: notifications already turned into a notify.email-send record (acknowledged by
-- Kafka). A redelivered or replayed notify.email record for one of these is skipped. Retention
-- must outlast the notify.email topic's retention; delete older rows through emitted_age.
CREATE TABLE emitted_notifications (
  notification_id text PRIMARY KEY,
  send_id         text NOT NULL,
  emitted_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX emitted_age ON emitted_notifications (emitted_at);
