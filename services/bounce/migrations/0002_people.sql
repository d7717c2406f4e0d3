-- Who an address belongs to, materialized from the compacted notify.user stream (key: user_id):
-- a complaint turns off email for the people at the address even when the report does not name
-- them. Only the hash is kept; people without a confirmed email have no row.
CREATE TABLE people (
  user_id text PRIMARY KEY,
  address_hash text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX people_address ON people (address_hash);
