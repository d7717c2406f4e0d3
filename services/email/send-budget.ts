/**
 * The warm-up ramp's daily count in Postgres (send_counts), shared by every sender process of the
 * sending IP, so several processes together never pass the day's cap and a restart does not reset
 * it. Taking one slot per send would make every send wait for the same row lock and its commit, so
 * a process reserves slots a few at a time and hands them out locally; what it did not use goes
 * back on shutdown. A process that dies keeps its unused reservation counted for that day: the
 * error is on the side of sending less, never more.
 */
import type pg from 'pg';

/** Slots reserved per round trip: small next to real caps, large enough to keep the row cool. */
export const RESERVATION = 25;

export interface DailyBudget {
  /** One of the day's `cap` slots; false when the cap is reached. */
  take(day: number, cap: number): Promise<boolean>;
  /** A slot back, for a send that never reached a server that took it. */
  giveBack(day: number): void;
  /** Returns the unused reservation to the shared count. */
  release(): Promise<void>;
}

async function reserve(db: pg.Pool, day: number, cap: number, wanted: number): Promise<number> {
  await db.query(
    'INSERT INTO send_counts (ramp_day, sent) VALUES ($1, 0) ON CONFLICT (ramp_day) DO NOTHING',
    [day],
  );
  const { rows } = await db.query<{ granted: number }>(
    `WITH current AS (SELECT sent FROM send_counts WHERE ramp_day = $1 FOR UPDATE)
     UPDATE send_counts s SET sent = s.sent + LEAST($3, $2 - current.sent)
     FROM current WHERE s.ramp_day = $1 AND current.sent < $2
     RETURNING LEAST($3, $2 - current.sent) AS granted`,
    [day, cap, wanted],
  );
  return rows[0]?.granted ?? 0;
}

export function createDailyBudget(db: pg.Pool, reservation = RESERVATION): DailyBudget {
  let day = -1;
  let available = 0;
  let pending: Promise<number> | null = null;

  return {
    async take(today, cap) {
      for (;;) {
        if (today !== day) {
          // Yesterday's leftover stays counted for yesterday; it cannot be spent today.
          day = today;
          available = 0;
        }
        if (available > 0) {
          available--;
          return true;
        }
        // One reservation at a time: concurrent senders wait for it rather than each reserving.
        pending ??= reserve(db, today, cap, reservation)
          .then((granted) => {
            if (today === day) available += granted;
            return granted;
          })
          .finally(() => {
            pending = null;
          });
        if ((await pending) === 0 && available === 0) return false;
      }
    },
    giveBack(forDay) {
      if (forDay === day) available++;
    },
    async release() {
      if (available === 0 || day < 0) return;
      const unused = available;
      available = 0;
      await db.query('UPDATE send_counts SET sent = GREATEST(0, sent - $2) WHERE ramp_day = $1', [
        day,
        unused,
      ]);
    },
  };
}

export async function sentOnDay(db: pg.Pool, day: number): Promise<number> {
  const { rows } = await db.query<{ sent: number }>('SELECT sent FROM send_counts WHERE ramp_day = $1', [
    day,
  ]);
  return rows[0]?.sent ?? 0;
}
