-- The email service's sender side: what was handed to SMTP, the warm-up ramp's counts, and the
-- suppressions materialized from notify.suppression.

-- A row per send_id, written (and committed) BEFORE the SMTP transaction as 'sending', and turned
-- to 'sent' after the server accepted the message (those marks are batched a few ms later). A
-- redelivered record whose row says 'sent' is skipped; what a row still at 'sending' means and
-- what the sender does with it is described in sent-ledger.ts. A definite failure (no connection,
-- or an SMTP reply refusing the message) deletes the row, so a retry can send.
CREATE TABLE sent_messages (
  send_id      text PRIMARY KEY,
  recipient_id text NOT NULL,
  state        text NOT NULL CHECK (state IN ('sending', 'sent')),
  attempted_at timestamptz NOT NULL DEFAULT now(),
  sent_at      timestamptz,
  smtp_response text
);
CREATE INDEX sent_messages_age ON sent_messages (attempted_at);

-- The warm-up ramp's count of sends per day since the ramp start, shared by every sender instance
-- so the daily cap holds for the IP, not per process. Processes reserve slots a few at a time and
-- return what they did not use on shutdown (send-budget.ts).
CREATE TABLE send_counts (
  ramp_day integer PRIMARY KEY,
  sent     integer NOT NULL CHECK (sent >= 0)
);

-- Addresses not to mail, from the compacted notify.suppression stream (key: address hash). A
-- tombstone deletes the row; a row whose `until` has passed no longer suppresses.
CREATE TABLE suppressions (
  address_hash text PRIMARY KEY,
  reason       text NOT NULL,
  until        timestamptz,
  detail       text,
  updated_at   timestamptz NOT NULL DEFAULT now()
);
