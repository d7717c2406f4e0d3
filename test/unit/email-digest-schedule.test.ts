import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type DigestSchedule,
  instantOfWallClock,
  jitterFor,
  nextDigestDue,
  validateSchedule,
} from '../../services/email/digest-schedule.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const AT_EIGHT: DigestSchedule = { hour: 8, weekday: 1, jitterMs: 0 };
const utc = (iso: string) => Date.parse(iso);

/** Local date, weekday and time of an instant, e.g. "2026-11-23 Mon 08:00". */
function local(instant: number, timeZone: string): string {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      weekday: 'short',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
    })
      .formatToParts(instant)
      .map((p) => [p.type, p.value]),
  );
  return `${parts.year}-${parts.month}-${parts.day} ${parts.weekday} ${parts.hour}:${parts.minute}`;
}

describe('daily digests at a local hour', () => {
  test('two people in different timezones get theirs at 08:00 their time', () => {
    const after = utc('2026-11-21T00:00:00Z');
    const berlin = nextDigestDue('anna', 'Europe/Berlin', 'daily', after, AT_EIGHT);
    const newYork = nextDigestDue('bob', 'America/New_York', 'daily', after, AT_EIGHT);
    assert.equal(berlin, utc('2026-11-21T07:00:00Z'));
    assert.equal(newYork, utc('2026-11-21T13:00:00Z'));
  });

  test('the next slot is strictly after the given time: a digest just sent is due again tomorrow', () => {
    const due = nextDigestDue('anna', 'Europe/Berlin', 'daily', utc('2026-11-21T07:00:00Z'), AT_EIGHT);
    assert.equal(due, utc('2026-11-22T07:00:00Z'));
  });

  for (const zone of ['Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'Asia/Kolkata']) {
    test(`a year of daily digests in ${zone} stays at 08:00 local across DST changes`, () => {
      let t = utc('2026-01-01T00:00:00Z');
      const days = new Set<string>();
      for (let i = 0; i < 400; i++) {
        const due = nextDigestDue('anna', zone, 'daily', t, AT_EIGHT);
        const shown = local(due, zone);
        assert.match(shown, / 08:00$/, `digest ${i} at ${shown}`);
        days.add(shown.slice(0, 10));
        t = due;
      }
      assert.equal(days.size, 400, 'one digest per local day, none skipped or doubled');
    });
  }

  test('the day DST starts in Berlin the digest comes an hour earlier in UTC, at the same local hour', () => {
    const saturday = nextDigestDue('anna', 'Europe/Berlin', 'daily', utc('2026-03-28T00:00:00Z'), AT_EIGHT);
    const sunday = nextDigestDue('anna', 'Europe/Berlin', 'daily', saturday, AT_EIGHT);
    assert.equal(saturday, utc('2026-03-28T07:00:00Z'));
    assert.equal(sunday, utc('2026-03-29T06:00:00Z'));
    assert.equal(sunday - saturday, 23 * HOUR);
  });

  test('a local hour skipped by spring-forward moves forward by the gap', () => {
    const atTwo = { ...AT_EIGHT, hour: 2 };
    const due = nextDigestDue('anna', 'Europe/Berlin', 'daily', utc('2026-03-28T12:00:00Z'), atTwo);
    assert.equal(due, utc('2026-03-29T01:00:00Z'));
    assert.equal(local(due, 'Europe/Berlin'), '2026-03-29 Sun 03:00');
  });

  test('a local hour that happens twice at fall-back is taken the first time, once', () => {
    const atTwo = { ...AT_EIGHT, hour: 2 };
    const due = nextDigestDue('anna', 'Europe/Berlin', 'daily', utc('2026-10-24T12:00:00Z'), atTwo);
    assert.equal(due, utc('2026-10-25T00:00:00Z'));
    const next = nextDigestDue('anna', 'Europe/Berlin', 'daily', due, atTwo);
    assert.equal(next, utc('2026-10-26T01:00:00Z'));
  });

  test('an unknown timezone falls back to UTC instead of losing the digest', () => {
    const due = nextDigestDue('anna', 'Mars/Olympus_Mons', 'daily', utc('2026-11-21T00:00:00Z'), AT_EIGHT);
    assert.equal(due, utc('2026-11-21T08:00:00Z'));
  });
});

describe('weekly digests', () => {
  test('go out on the configured local weekday', () => {
    const saturday = utc('2026-11-21T10:00:00Z');
    const due = nextDigestDue('anna', 'Europe/Berlin', 'weekly', saturday, AT_EIGHT);
    assert.equal(local(due, 'Europe/Berlin'), '2026-11-23 Mon 08:00');
    const following = nextDigestDue('anna', 'Europe/Berlin', 'weekly', due, AT_EIGHT);
    assert.equal(following - due, 7 * DAY);
  });

  test('the weekday is the local one, not UTC’s', () => {
    // Monday 08:00 in Auckland is still Sunday in UTC.
    const due = nextDigestDue('kiri', 'Pacific/Auckland', 'weekly', utc('2026-11-21T00:00:00Z'), AT_EIGHT);
    assert.equal(local(due, 'Pacific/Auckland'), '2026-11-23 Mon 08:00');
    assert.equal(new Date(due).getUTCDay(), 0);
  });
});

describe('jitter', () => {
  const spread: DigestSchedule = { hour: 8, weekday: 1, jitterMs: 2 * HOUR };

  test('each person gets a stable offset inside the window, and people are spread over it', () => {
    const after = utc('2026-11-21T00:00:00Z');
    const base = instantOfWallClock(Date.UTC(2026, 10, 21, 8), 'Europe/Berlin');
    const tenMinuteBuckets = new Set<number>();
    for (let i = 0; i < 1000; i++) {
      const due = nextDigestDue(`user-${i}`, 'Europe/Berlin', 'daily', after, spread);
      assert.ok(due >= base && due < base + spread.jitterMs, `user-${i} due outside the window`);
      assert.equal(nextDigestDue(`user-${i}`, 'Europe/Berlin', 'daily', after, spread), due);
      tenMinuteBuckets.add(Math.floor((due - base) / (10 * 60_000)));
    }
    assert.equal(tenMinuteBuckets.size, 12, 'every ten minutes of the window gets some people');
  });

  test('yesterday’s slot still counts while its offset keeps it ahead', () => {
    const late: DigestSchedule = { hour: 23, weekday: 1, jitterMs: 3 * HOUR };
    const userId = Array.from({ length: 100 }, (_, i) => `u${i}`).find(
      (id) => jitterFor(id, late.jitterMs) > 2 * HOUR,
    );
    assert.ok(userId);
    const slot = utc('2026-11-20T23:00:00Z') + jitterFor(userId, late.jitterMs);
    // 00:30 UTC on the 21st: the 20th's 23:00 slot plus more than two hours is still ahead.
    assert.equal(nextDigestDue(userId, 'UTC', 'daily', utc('2026-11-21T00:30:00Z'), late), slot);
  });
});

test('a schedule outside its ranges is rejected with each problem named', () => {
  const problems = validateSchedule({ hour: 24, weekday: 7, jitterMs: DAY });
  assert.equal(problems.length, 3);
  assert.deepEqual(validateSchedule(AT_EIGHT), []);
});
