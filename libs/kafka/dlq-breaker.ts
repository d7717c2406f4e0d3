/**
 * A circuit breaker on the dead-letter rate. One bad record is the DLQ's job; hundreds a minute
 * usually mean a bad deploy or a broken producer, and dead-lettering the whole stream would turn
 * an outage into a clean-up. Past the threshold the consumer pauses, says so loudly, and tries
 * again after a cool-down.
 */
export interface DlqBreakerOptions {
  /** Dead letters within `windowMs` that open the breaker; 0 disables it. */
  threshold: number;
  windowMs: number;
  cooldownMs: number;
}

export interface DlqBreaker {
  /** Records one dead letter; true when this one opened the breaker. */
  record(now: number): boolean;
  isOpen(now: number): boolean;
  /** When an open breaker may close again. */
  reopensAt(): number | null;
  recentCount(now: number): number;
}

export function createDlqBreaker({ threshold, windowMs, cooldownMs }: DlqBreakerOptions): DlqBreaker {
  let times: number[] = [];
  let openUntil: number | null = null;

  const prune = (now: number) => {
    const from = now - windowMs;
    let i = 0;
    while (i < times.length && times[i]! <= from) i++;
    if (i > 0) times = times.slice(i);
  };

  return {
    record(now) {
      if (threshold <= 0) return false;
      prune(now);
      times.push(now);
      if (openUntil === null && times.length >= threshold) {
        openUntil = now + cooldownMs;
        times = [];
        return true;
      }
      return false;
    },
    isOpen(now) {
      if (openUntil !== null && now >= openUntil) openUntil = null;
      return openUntil !== null;
    },
    reopensAt() {
      return openUntil;
    },
    recentCount(now) {
      prune(now);
      return times.length;
    },
  };
}
