-- The inbox's own schema: a person's web notifications, their read/archived state, and counters
-- kept in the write path. Times are bigint ms since the epoch, compared directly with meta.dt.

-- One row per person who ever had a notification or a state change: the counters a badge reads
-- (one primary-key lookup per request), the watermarks that cover notifications not yet arrived,
-- the per-person sequence that numbers live updates, and the erasure marker.
CREATE TABLE people (
  user_id       text PRIMARY KEY,
  total         integer NOT NULL DEFAULT 0,   -- rows in notifications, archived included (the cap)
  unread        integer NOT NULL DEFAULT 0,   -- not read and not archived
  unseen        integer NOT NULL DEFAULT 0,   -- newer than seen_until and not archived
  seq           bigint  NOT NULL DEFAULT 0,   -- last live-update id handed out (SSE Last-Event-ID)
  seen_until    bigint  NOT NULL DEFAULT 0,   -- Echo's seen-time watermark
  read_until    bigint  NOT NULL DEFAULT 0,   -- "mark all read up to": event time covered
  read_until_dt bigint  NOT NULL DEFAULT 0,   -- meta.dt of that mark, for newest-wins
  erased_at     bigint                        -- the person was erased; older records stay out
);

-- One row per notify.web notification id: a redelivery or replay conflicts here and changes nothing.
-- entry_id groups a bundle (same bundle key, same bundle window) or a folded summary; read_dt and
-- archived_dt are the meta.dt of the mark that decided the flag, so marks from both datacenters
-- converge whatever order they arrive in.
CREATE TABLE notifications (
  notification_id text PRIMARY KEY,
  user_id         text    NOT NULL,
  seq             bigint  NOT NULL,
  event_id        text    NOT NULL,
  entry_id        text    NOT NULL,
  event_ms        bigint  NOT NULL,
  category        text    NOT NULL,
  section         text    NOT NULL CHECK (section IN ('alert', 'notice')),
  folded          boolean NOT NULL,
  payload         jsonb   NOT NULL,
  read            boolean NOT NULL DEFAULT false,
  read_dt         bigint  NOT NULL DEFAULT 0,
  archived        boolean NOT NULL DEFAULT false,
  archived_dt     bigint  NOT NULL DEFAULT 0
);
CREATE INDEX notifications_person_time ON notifications (user_id, event_ms DESC);
CREATE INDEX notifications_person_seq ON notifications (user_id, seq);
CREATE INDEX notifications_age ON notifications (event_ms);

-- Marks for notifications this datacenter has not stored yet (notify.inbox-state and notify.web are
-- mirrored independently): applied when the notification arrives, only if it is the marking
-- person's own (notification ids are deterministic, so anyone could name someone else's). Pruned
-- after notify.web's retention.
CREATE TABLE marks (
  user_id         text   NOT NULL,
  notification_id text   NOT NULL,
  kind            text   NOT NULL CHECK (kind IN ('read', 'archive')),
  value           boolean NOT NULL,
  dt              bigint NOT NULL,
  PRIMARY KEY (user_id, notification_id, kind)
);
CREATE INDEX marks_notification ON marks (notification_id);
CREATE INDEX marks_age ON marks (dt);

-- Notifications the per-person cap removed: a replay of one must not bring it back. Kept as long as
-- notify.web could still deliver it (its retention), then pruned through removed_age.
CREATE TABLE removed (
  notification_id text PRIMARY KEY,
  removed_at      bigint NOT NULL
);
CREATE INDEX removed_age ON removed (removed_at);
