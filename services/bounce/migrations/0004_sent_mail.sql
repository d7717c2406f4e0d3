-- Which notifications each sent message carried, learnt from the sender's delivery trail
-- (notify.status, stage sender): a report names only the message (its signed send id), and the trail
-- tells the bounce on each notification it carried. Kept as long as a report may still arrive
-- (VERP_MAX_AGE); an erased person's rows go with them.
CREATE TABLE sent_mail (
  send_id text NOT NULL,
  notification_id text NOT NULL,
  event_id text NOT NULL,
  recipient_id text NOT NULL,
  sent_at timestamptz NOT NULL,
  PRIMARY KEY (send_id, notification_id)
);
CREATE INDEX sent_mail_sent_at ON sent_mail (sent_at);
CREATE INDEX sent_mail_recipient ON sent_mail (recipient_id);
