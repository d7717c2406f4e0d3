-- Convergence (docs/architecture.md): every table materialized from a stream consumed from both
-- datacenter prefixes keeps the version of the record it holds, (record_dt, erased, record_id), and
-- only a newer version replaces it, so arrival order does not matter.

-- An erased person keeps a marker row (erased, data cleared, record_dt = the erasure's event time):
-- an older notify.user record arriving later (the other prefix's compacted copy, a retry, a replay)
-- loses to it. Markers are never pruned: the other prefix keeps its last upsert for ever.
ALTER TABLE users
  ADD COLUMN record_id text NOT NULL DEFAULT '',
  ADD COLUMN erased boolean NOT NULL DEFAULT false,
  ALTER COLUMN locale DROP NOT NULL,
  ALTER COLUMN timezone DROP NOT NULL,
  ALTER COLUMN email_frequency DROP NOT NULL,
  ADD CONSTRAINT users_marker_or_person
    CHECK (erased OR (locale IS NOT NULL AND timezone IS NOT NULL AND email_frequency IS NOT NULL));

-- Ties of changed_at are broken by meta.id, as for users.
ALTER TABLE preference_changes ADD COLUMN record_id text NOT NULL DEFAULT '';
ALTER TABLE email_frequency_changes ADD COLUMN record_id text NOT NULL DEFAULT '';
