/**
 * When a person's next daily or weekly digest is due: at a configured local hour in the person's
 * IANA timezone, plus a per-person offset within a jitter window. The offset comes from a hash of
 * the user id, so it is stable across restarts and replays, and it spreads everyone whose local
 * hour starts at the same instant over the window: neither Postgres nor SMTP sees the whole
 * timezone at once (Medium's digest pipeline learnt this from a bursty downstream).
 *
 * DST: the local hour is found with Intl, so a digest stays at 08:00 local across the change. A
 * local time that does not exist (skipped by a spring-forward) moves forward by the gap; one that
 * happens twice (fall-back) takes the first occurrence.
 */
import { createHash } from 'node:crypto';

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

export type DigestFrequency = 'daily' | 'weekly';

export interface DigestSchedule {
  /** Local hour (0–23) the digest window opens at. */
  readonly hour: number;
  /** Day of the week weekly digests go out on, 0 = Sunday … 6 = Saturday (local date). */
  readonly weekday: number;
  /** Offsets are spread over [0, jitterMs); under a day so a digest stays on its local date's slot. */
  readonly jitterMs: number;
}

export function validateSchedule(schedule: DigestSchedule): string[] {
  const problems: string[] = [];
  if (!Number.isInteger(schedule.hour) || schedule.hour < 0 || schedule.hour > 23)
    problems.push(`digest hour must be an integer 0-23, got ${schedule.hour}`);
  if (!Number.isInteger(schedule.weekday) || schedule.weekday < 0 || schedule.weekday > 6)
    problems.push(`digest weekday must be an integer 0 (Sunday) to 6 (Saturday), got ${schedule.weekday}`);
  if (!Number.isInteger(schedule.jitterMs) || schedule.jitterMs < 0 || schedule.jitterMs >= DAY_MS)
    problems.push(`digest jitter must be at least 0 and under one day, got ${schedule.jitterMs} ms`);
  return problems;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, formatter);
  }
  return formatter;
}

/** The timezone if Intl knows it, else UTC: a person with a broken timezone still gets a digest. */
export function resolveTimeZone(timeZone: string): string {
  try {
    formatterFor(timeZone);
    return timeZone;
  } catch {
    return 'UTC';
  }
}

interface LocalDate {
  readonly year: number;
  readonly month: number;
  readonly day: number;
}

/** The local wall-clock time of `instant`, encoded as if it were UTC. */
function wallClockOf(instant: number, timeZone: string): number {
  const parts: Record<string, number> = {};
  for (const part of formatterFor(timeZone).formatToParts(instant)) {
    if (part.type !== 'literal') parts[part.type] = Number(part.value);
  }
  const { year = 1970, month = 1, day = 1, hour = 0, minute = 0, second = 0 } = parts;
  return Date.UTC(year, month - 1, day, hour, minute, second);
}

function offsetAt(instant: number, timeZone: string): number {
  // Whole seconds: the formatter has no milliseconds.
  const whole = Math.floor(instant / 1000) * 1000;
  return wallClockOf(whole, timeZone) - whole;
}

/** The instant a local wall-clock time (given as if UTC) happens in `timeZone`. */
export function instantOfWallClock(wallClock: number, timeZone: string): number {
  const before = offsetAt(wallClock - DAY_MS, timeZone);
  const after = offsetAt(wallClock + DAY_MS, timeZone);
  const candidates = [wallClock - before, wallClock - after].filter(
    (instant) => offsetAt(instant, timeZone) === wallClock - instant,
  );
  // Both valid: the fall-back overlap, take the earlier. Neither: the spring-forward gap; the
  // offset from before the change lands as many minutes after the gap as the time was into it.
  return candidates.length > 0 ? Math.min(...candidates) : wallClock - before;
}

function localDateOf(instant: number, timeZone: string): LocalDate {
  const d = new Date(wallClockOf(instant, timeZone));
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() };
}

/** Stable offset in [0, jitterMs) for a person. */
export function jitterFor(userId: string, jitterMs: number): number {
  if (jitterMs <= 0) return 0;
  const digest = createHash('sha256').update(userId).digest();
  return digest.readUIntBE(0, 6) % jitterMs;
}

/** The first due time strictly after `after` (ms since the epoch). */
export function nextDigestDue(
  userId: string,
  timeZone: string,
  frequency: DigestFrequency,
  after: number,
  schedule: DigestSchedule,
): number {
  const zone = resolveTimeZone(timeZone);
  const offset = jitterFor(userId, schedule.jitterMs);
  const today = localDateOf(after, zone);
  // Starting a day back: yesterday's slot plus its offset may still be ahead of `after`.
  for (let delta = -1; delta <= 8; delta++) {
    const wallClock = Date.UTC(today.year, today.month - 1, today.day + delta, schedule.hour);
    if (frequency === 'weekly' && new Date(wallClock).getUTCDay() !== schedule.weekday) continue;
    const due = instantOfWallClock(wallClock, zone) + offset;
    if (due > after) return due;
  }
  throw new Error(`no ${frequency} digest slot found after ${new Date(after).toISOString()} in ${zone}`);
}
