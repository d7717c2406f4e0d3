-- The email service's sender side: what was handed to SMTP, and the warm-up ramp's counts.

-- Sender side: a row per send_id, written BEFORE the SMTP transaction as 'sending' and turned to
-- 'sent' once the server accepted the message. A redelivered record whose row says 'sent' is
-- skipped; one left at 'sending' (crash between SMTP accept and the update) is the accepted
-- window: the sender resolves it by policy (at most once: skip and count it) rather than risk a
-- second copy.
CREATE TABLE sent_messages (
  send_id      text PRIMARY KEY,
  recipient_id text NOT NULL,
  state        text NOT NULL CHECK (state IN ('sending', 'sent')),
  attempted_at timestamptz NOT NULL DEFAULT now(),
  sent_at      timestamptz,
  smtp_response text
);
CREATE INDEX sent_messages_age ON sent_messages (attempted_at);

-- The warm-up ramp's count of real sends per day since the ramp start, shared by every sender
-- instance so the daily cap holds for the IP, not per process.
CREATE TABLE send_counts (
  ramp_day integer PRIMARY KEY,
  sent     integer NOT NULL CHECK (sent >= 0)
);
