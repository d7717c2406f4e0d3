-- Convergence (docs/architecture.md): a person's row keeps the version of the notify.user record it
-- holds, (record_dt, erased, record_id), and only a newer version replaces it, so an older address
-- arriving later (the other prefix, a retry, a replay) does not overwrite a newer one. A person
-- without a confirmed address keeps a row without one; an erased person keeps a marker row that
-- older records lose to, never pruned (the other prefix keeps its last upsert for ever).
ALTER TABLE people
  ADD COLUMN record_dt timestamptz NOT NULL DEFAULT '-infinity',
  ADD COLUMN record_id text NOT NULL DEFAULT '',
  ADD COLUMN erased boolean NOT NULL DEFAULT false,
  ALTER COLUMN address_hash DROP NOT NULL,
  ADD CONSTRAINT people_marker_has_no_address CHECK (NOT erased OR address_hash IS NULL);
