/**
 * How fast the sender may hand mail to SMTP: a daily cap that follows an IP warm-up ramp (a fresh
 * IP that sends a lot on day one is treated as a spammer), and a per-second token bucket so a
 * day's budget is not spent in one burst.
 *
 * Only real sends count. The caller acquires just before handing a message to SMTP, after the
 * suppression and duplicate checks, so skipped work never eats the budget (Medium's no-op events
 * held their queue back the same way); a send that never reached the server gives its slot back.
 */

const DAY_MS = 86_400_000;

export interface SendRateOptions {
  /** When the warm-up began (ms since the epoch); ramp days count from here. */
  readonly rampStart: number;
  /** Daily caps by day since rampStart, e.g. [50, 100, 500, 1000, 5000]; the last holds afterwards. */
  readonly dailyCaps: readonly number[];
  readonly perSecond: number;
  /** Bucket size: the most sends allowed back to back. */
  readonly burst: number;
}

export type SendPermit =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: 'daily-cap' | 'per-second'; readonly retryAt: number };

/** What the wiring persists so a restart does not reset the day's count. */
export interface SendRateSnapshot {
  readonly day: number;
  readonly sentToday: number;
}

export interface SendRateLimiter {
  tryAcquire(now: number): SendPermit;
  /** Gives back a slot acquired for a send that never reached the server (e.g. connection refused). */
  refund(now: number): void;
  snapshot(): SendRateSnapshot;
  /** The ramp's cap for the day containing `now`. */
  capFor(now: number): number;
}

/** Days since the ramp start containing `now` (0 before it). */
export function rampDayOf(rampStart: number, now: number): number {
  return Math.max(0, Math.floor((now - rampStart) / DAY_MS));
}

/** When ramp day `day` ends and the next day's cap applies. */
export function rampDayEnd(rampStart: number, day: number): number {
  return rampStart + (day + 1) * DAY_MS;
}

export function validateSendRate(options: SendRateOptions): string[] {
  const problems: string[] = [];
  if (options.dailyCaps.length === 0) problems.push('the warm-up ramp needs at least one daily cap');
  if (options.dailyCaps.some((cap) => !Number.isInteger(cap) || cap < 0))
    problems.push(`daily caps must be integers >= 0, got ${options.dailyCaps.join(', ')}`);
  if (!(options.perSecond > 0)) problems.push(`sends per second must be > 0, got ${options.perSecond}`);
  if (!(options.burst >= 1)) problems.push(`burst must be >= 1, got ${options.burst}`);
  return problems;
}

export function createSendRateLimiter(
  options: SendRateOptions,
  restored: SendRateSnapshot = { day: 0, sentToday: 0 },
): SendRateLimiter {
  const problems = validateSendRate(options);
  if (problems.length > 0) throw new Error(`invalid send rate: ${problems.join('; ')}`);
  let day = restored.day;
  let sentToday = restored.sentToday;
  let tokens = options.burst;
  let refilledAt: number | null = null;

  const dayOf = (now: number) => rampDayOf(options.rampStart, now);
  const capFor = (now: number) => options.dailyCaps[Math.min(dayOf(now), options.dailyCaps.length - 1)] ?? 0;

  function advance(now: number) {
    const today = dayOf(now);
    if (today !== day) {
      day = today;
      sentToday = 0;
    }
    if (refilledAt !== null && now > refilledAt)
      tokens = Math.min(options.burst, tokens + ((now - refilledAt) / 1000) * options.perSecond);
    refilledAt = refilledAt === null ? now : Math.max(refilledAt, now);
  }

  return {
    tryAcquire(now) {
      advance(now);
      if (sentToday >= capFor(now))
        return { ok: false, reason: 'daily-cap', retryAt: rampDayEnd(options.rampStart, day) };
      if (tokens < 1)
        return {
          ok: false,
          reason: 'per-second',
          retryAt: now + Math.ceil(((1 - tokens) / options.perSecond) * 1000),
        };
      tokens -= 1;
      sentToday += 1;
      return { ok: true };
    },
    refund(now) {
      advance(now);
      sentToday = Math.max(0, sentToday - 1);
      tokens = Math.min(options.burst, tokens + 1);
    },
    snapshot: () => ({ day, sentToday }),
    capFor,
  };
}
