-- Convergence (docs/architecture.md): a suppression row keeps the version of the notify.suppression
-- record it holds, (record_dt = meta.dt, lifted, record_id), and only a newer version replaces it:
-- a lift that went through the retry path does not delete a newer complaint. A lifted suppression
-- (a tombstone) keeps a marker row, so an older copy (the other prefix's compacted record, a retry,
-- a replay) does not suppress the address again. Markers are never pruned: the other prefix keeps
-- its last record for ever.
ALTER TABLE suppressions
  ADD COLUMN record_dt timestamptz NOT NULL DEFAULT '-infinity',
  ADD COLUMN record_id text NOT NULL DEFAULT '',
  ADD COLUMN lifted boolean NOT NULL DEFAULT false,
  ALTER COLUMN reason DROP NOT NULL,
  ADD CONSTRAINT suppressions_marker_or_reason CHECK (lifted OR reason IS NOT NULL);
