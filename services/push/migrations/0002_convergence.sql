-- Convergence (docs/architecture.md): a device row keeps the version of the record it holds,
-- (subscribed_at = meta.dt, removed, record_id), and only a newer version replaces it.

-- A removed device (a notify.push-subscription tombstone: unsubscribed, or dead at the provider)
-- keeps a marker row with its token and person cleared, so an older copy of its subscription (the
-- other prefix's compacted record, a retry, a replay) does not bring the token back. Markers are
-- never pruned: the other prefix keeps its last upsert for ever.
ALTER TABLE subscriptions
  ADD COLUMN record_id text NOT NULL DEFAULT '',
  ADD COLUMN removed boolean NOT NULL DEFAULT false,
  ALTER COLUMN user_id DROP NOT NULL,
  ALTER COLUMN provider DROP NOT NULL,
  ALTER COLUMN token DROP NOT NULL,
  ALTER COLUMN app DROP NOT NULL,
  ALTER COLUMN locale DROP NOT NULL,
  ADD CONSTRAINT subscriptions_marker_or_device CHECK (removed OR (user_id IS NOT NULL AND provider IS NOT NULL
    AND token IS NOT NULL AND app IS NOT NULL AND locale IS NOT NULL));

-- People erased (notify.erasure for notify.user): their devices become markers, and a subscription
-- of theirs no newer than the erasure is not stored.
CREATE TABLE erased_people (
  user_id   text PRIMARY KEY,
  erased_at timestamptz NOT NULL
);
