-- Devices materialized from the compacted notify.push-subscription stream (key: token_hash).
CREATE TABLE subscriptions (
  token_hash text PRIMARY KEY,
  user_id text NOT NULL,
  provider text NOT NULL CHECK (provider IN ('fcm', 'apns')),
  token text NOT NULL,
  app text NOT NULL,
  locale text NOT NULL,
  -- meta.dt of the subscription record: which devices are the oldest when a person has too many.
  subscribed_at timestamptz NOT NULL
);
CREATE INDEX subscriptions_user ON subscriptions (user_id, subscribed_at);

-- Which device already got the push for a notification: a redelivered or retried record does not
-- wake the same device twice. Pruned after a retention period.
CREATE TABLE delivered (
  notification_id text NOT NULL,
  token_hash text NOT NULL,
  delivered_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (notification_id, token_hash)
);
CREATE INDEX delivered_at ON delivered (delivered_at);
