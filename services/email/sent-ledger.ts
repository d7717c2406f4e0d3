/**
 * The durable record of what the sender handed to SMTP, one row per send_id. A send is claimed as
 * 'sending' before the SMTP transaction starts and marked 'sent' after the server accepted it, so a
 * redelivery after a crash finds the row and does not mail the person a second time.
 *
 * A row still at 'sending' when its record comes back means the process died (or the connection
 * broke) between handing the message over and recording the answer: the server may or may not have
 * it. At-least-once mail (the default; transactional mail always) retakes the claim and goes again
 * with the same Message-ID, so a provider or client that deduplicates by Message-ID shows it once;
 * at-most-once mail is counted ambiguous and never sent again. A message is claimed only once a slot
 * of the pool is free for it (two per connection), so a crash leaves at most 2 x SMTP_MAX_CONNECTIONS
 * such claims, plus accepted ones whose 'sent' mark was not written yet (marks are batched).
 */
import type pg from 'pg';

export type LedgerState = 'sending' | 'sent';

/** What claiming found: the send is ours to make, or the row of an earlier attempt. */
export type Claim = 'claimed' | LedgerState;

/** The rows already there for these ids: one query per fetched batch. */
export async function ledgerStates(
  db: pg.Pool,
  sendIds: readonly string[],
): Promise<Map<string, LedgerState>> {
  if (sendIds.length === 0) return new Map();
  const { rows } = await db.query<{ send_id: string; state: LedgerState }>(
    'SELECT send_id, state FROM sent_messages WHERE send_id = ANY($1)',
    [sendIds],
  );
  return new Map(rows.map((r) => [r.send_id, r.state]));
}

export async function claimSend(db: pg.Pool, sendId: string, recipientId: string): Promise<Claim> {
  // The outer SELECT sees the row as it was before this statement: a row another sender is inserting
  // right now is in neither result, and is reported as 'sending' (someone else has it).
  const { rows } = await db.query<{ state: string }>(
    `WITH claimed AS (
       INSERT INTO sent_messages (send_id, recipient_id, state) VALUES ($1, $2, 'sending')
       ON CONFLICT (send_id) DO NOTHING RETURNING send_id
     )
     SELECT 'claimed' AS state FROM claimed
     UNION ALL
     SELECT state FROM sent_messages WHERE send_id = $1 AND NOT EXISTS (SELECT 1 FROM claimed)`,
    [sendId, recipientId],
  );
  const state = rows[0]?.state;
  return state === 'claimed' || state === 'sent' ? state : 'sending';
}

export interface SentMarker {
  /** Queues the 'sent' mark; written within the flush interval together with others. */
  mark(sendId: string, smtpResponse: string): void;
  /** Writes whatever is queued (shutdown). */
  flush(): Promise<void>;
}

/**
 * Marks sends 'sent' in batches, off the send's path: the next message does not wait for them,
 * only the offset commit does (flush). Until a mark is written the row says 'sending', which a
 * redelivery treats as "may have gone out" and does not resend, so a mark lost in a crash costs an
 * ambiguous count, never a second copy.
 */
export function createSentMarker(
  db: pg.Pool,
  options: { intervalMs: number; onError: (error: unknown) => void },
): SentMarker {
  let queued = new Map<string, string>();
  let timer: NodeJS.Timeout | null = null;
  let writing: Promise<void> = Promise.resolve();

  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = null;
    if (queued.size === 0) return writing;
    const batch = queued;
    queued = new Map();
    writing = writing.then(() =>
      db
        .query(
          `UPDATE sent_messages s SET state = 'sent', sent_at = now(), smtp_response = v.response
           FROM unnest($1::text[], $2::text[]) AS v(send_id, response) WHERE s.send_id = v.send_id`,
          [[...batch.keys()], [...batch.values()].map((r) => r.slice(0, 500))],
        )
        .then(() => undefined, options.onError),
    );
    return writing;
  };

  return {
    mark(sendId, smtpResponse) {
      queued.set(sendId, smtpResponse);
      timer ??= setTimeout(() => void flush(), options.intervalMs);
    },
    flush,
  };
}

/**
 * Takes over a claim left at 'sending' by an earlier attempt, or claims afresh if a definite failure
 * released it meanwhile. Two takers of the same row at once (a redelivery racing a retry of the same
 * send) both win: the price is a second copy under the same Message-ID, never a lost mail.
 */
export async function retakeSend(db: pg.Pool, sendId: string, recipientId: string): Promise<Claim> {
  const { rows } = await db.query<{ state: LedgerState }>(
    `UPDATE sent_messages SET attempted_at = now() WHERE send_id = $1 AND state = 'sending' RETURNING state`,
    [sendId],
  );
  if (rows.length > 0) return 'claimed';
  return claimSend(db, sendId, recipientId);
}

/** After a definite failure (the message never reached a server that took it): a retry may send. */
export async function releaseSend(db: pg.Pool, sendId: string): Promise<void> {
  await db.query("DELETE FROM sent_messages WHERE send_id = $1 AND state = 'sending'", [sendId]);
}

/** Forgets sends older than the retention; returns how many rows went. */
export async function pruneLedger(db: pg.Pool, retentionMs: number): Promise<number> {
  const result = await db.query(
    'DELETE FROM sent_messages WHERE attempted_at < now() - make_interval(secs => $1::double precision / 1000)',
    [retentionMs],
  );
  return result.rowCount ?? 0;
}
