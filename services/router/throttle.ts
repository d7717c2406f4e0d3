/**
 * Per-recipient throttle: at most `max` notifications of a category per recipient and window reach
 * email and push; the excess is folded into the web inbox.
 *
 * Windows are fixed windows of event time (event-window.ts), so a backlog drained after an outage is
 * not folded wholesale.
 *
 * State lives in throttle_counts (recipient_id, category, window_start) -> count. The wiring loads
 * the counts for the keys of a batch (see prefetch.ts), routes the batch through one ledger, and
 * after producing adds `increments()` to the stored counts. Two batches for the same person routed
 * concurrently (on different partitions) may each admit up to the limit: the throttle is a soft cap.
 */
import type { ThrottleRule } from './categories.ts';
import { windowStart } from './event-window.ts';

export interface ThrottleCount {
  readonly recipientId: string;
  readonly category: string;
  /** ms since the epoch, a multiple of the rule's window. */
  readonly windowStart: number;
  readonly count: number;
}

export type ThrottleKey = Omit<ThrottleCount, 'count'>;

export interface ThrottleLedger {
  /** Counts one notification and says whether it is within the limit; over the limit it is not counted. */
  admit(recipientId: string, category: string, rule: ThrottleRule, eventTime: number): boolean;
  /** What this batch admitted, to add to the stored counts. */
  increments(): ThrottleCount[];
  /**
   * Counts loaded for a later slice of the same batch. A key already loaded keeps its count: what
   * this batch admitted on it is in `increments()`, not yet stored, and must not be lost.
   */
  addStored(stored: Iterable<ThrottleCount>): void;
}

export function throttleKey(
  recipientId: string,
  category: string,
  rule: ThrottleRule,
  eventTime: number,
): ThrottleKey {
  return { recipientId, category, windowStart: windowStart(rule.windowMs, eventTime) };
}

/** A ThrottleKey as one string, for maps and sets. */
export const throttleKeyText = (k: ThrottleKey): string =>
  JSON.stringify([k.recipientId, k.category, k.windowStart]);

export function createThrottleLedger(stored: Iterable<ThrottleCount>): ThrottleLedger {
  const storedCounts = new Map<string, number>();
  for (const c of stored) storedCounts.set(throttleKeyText(c), c.count);
  const added = new Map<string, ThrottleCount>();

  return {
    admit(recipientId, category, rule, eventTime) {
      const key = throttleKey(recipientId, category, rule, eventTime);
      const k = throttleKeyText(key);
      const mine = added.get(k)?.count ?? 0;
      if ((storedCounts.get(k) ?? 0) + mine >= rule.max) return false;
      added.set(k, { ...key, count: mine + 1 });
      return true;
    },
    increments: () => [...added.values()],
    addStored(more) {
      for (const c of more) {
        const k = throttleKeyText(c);
        if (!storedCounts.has(k)) storedCounts.set(k, c.count);
      }
    },
  };
}
