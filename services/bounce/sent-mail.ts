/**
 * Which notifications each message carried, from the sender's delivery trail: a DSN or complaint
 * names only the message (the send id in its signed return path), and the bounce stage tells the
 * trail of every notification that message carried. Only the sender's "the relay has it" decisions
 * count (accepted, resent) and its own refusals (bounced): nothing else is ever reported on.
 * An erased person's messages are forgotten, and a trail record of theirs replayed later is not
 * learnt again.
 */
import type pg from 'pg';
import type { NotifyStatus } from '../../libs/schemas/types.generated.ts';

export interface SentNotification {
  readonly notificationId: string;
  readonly eventId: string;
  readonly recipientId: string;
}

const REPORTED_ON: ReadonlySet<NotifyStatus['outcome']> = new Set(['accepted', 'resent', 'bounced']);

/** Learns the records of a batch that name a sent message; the rest of the trail is not bounce's. */
export async function rememberSent(db: pg.Pool, records: readonly NotifyStatus[]): Promise<void> {
  const sent = records.filter(
    (r) => r.stage === 'sender' && REPORTED_ON.has(r.outcome) && r.ref !== null && r.notification_id !== null,
  );
  if (sent.length === 0) return;
  await db.query(
    `INSERT INTO sent_mail (send_id, notification_id, event_id, recipient_id, sent_at)
     SELECT s.send_id, s.notification_id, s.event_id, s.recipient_id, to_timestamp(s.at / 1000.0)
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[])
       AS s(send_id, notification_id, event_id, recipient_id, at)
     WHERE NOT EXISTS (SELECT 1 FROM people p WHERE p.user_id = s.recipient_id AND p.erased)
     ON CONFLICT (send_id, notification_id) DO NOTHING`,
    [
      sent.map((r) => r.ref),
      sent.map((r) => r.notification_id),
      sent.map((r) => r.event_id),
      sent.map((r) => r.recipient_id),
      sent.map((r) => r.at),
    ],
  );
}

export async function notificationsSentAs(db: pg.Pool, sendId: string): Promise<SentNotification[]> {
  const { rows } = await db.query<{ notification_id: string; event_id: string; recipient_id: string }>(
    'SELECT notification_id, event_id, recipient_id FROM sent_mail WHERE send_id = $1 ORDER BY notification_id',
    [sendId],
  );
  return rows.map((r) => ({
    notificationId: r.notification_id,
    eventId: r.event_id,
    recipientId: r.recipient_id,
  }));
}

/** Messages older than any report still accepted (VERP_MAX_AGE) can no longer be reported on. */
export async function pruneSent(db: pg.Pool, before: number): Promise<void> {
  await db.query('DELETE FROM sent_mail WHERE sent_at < to_timestamp($1 / 1000.0)', [before]);
}
