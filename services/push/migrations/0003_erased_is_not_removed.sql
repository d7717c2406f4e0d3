-- An erased person's device row is emptied but keeps the version of the record it held, deleted
-- bit included: the erasure is about the person, not a tombstone of the token. Marking it removed
-- made it outrank a record of the same time naming someone else (the token passed to another
-- person), which then lost or won depending on arrival order.
ALTER TABLE subscriptions
  ADD COLUMN erased boolean NOT NULL DEFAULT false,
  DROP CONSTRAINT subscriptions_marker_or_device,
  ADD CONSTRAINT subscriptions_marker_or_device CHECK (removed OR erased OR (user_id IS NOT NULL
    AND provider IS NOT NULL AND token IS NOT NULL AND app IS NOT NULL AND locale IS NOT NULL));
