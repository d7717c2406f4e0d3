-- Per-address suppression state (services/bounce/suppression-policy.ts), key: address_hash.
-- reason/since/until are the current suppression (all null when none); soft_bounces are the times
-- (ms since the epoch) of soft bounces still inside the window.
CREATE TABLE addresses (
  address_hash text PRIMARY KEY,
  address text,
  recipient_id text,
  reason text CHECK (reason IN ('hard_bounce', 'soft_bounce', 'complaint', 'manual')),
  since timestamptz,
  until timestamptz,
  soft_bounces bigint[] NOT NULL DEFAULT '{}',
  detail text,
  updated_at timestamptz NOT NULL DEFAULT now(),
  CHECK ((reason IS NULL) = (since IS NULL))
);
-- The release sweep finds suppressions whose cool-down is over by this index, not by a scan.
CREATE INDEX addresses_due ON addresses (until) WHERE until IS NOT NULL;
CREATE INDEX addresses_suppressed ON addresses (since) WHERE reason IS NOT NULL;

-- notify.bounce records already applied (meta.id): a record redelivered after its state was
-- committed but before its offset was must not count a soft bounce twice. Pruned after a while.
CREATE TABLE applied_bounces (
  bounce_id text PRIMARY KEY,
  applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX applied_bounces_at ON applied_bounces (applied_at);
