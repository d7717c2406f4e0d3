import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePointInTime } from '../../libs/config/point-in-time.ts';

const now = Date.parse('2026-11-21T12:00:00Z');

test('an ISO-8601 time with Z or an offset is that instant', () => {
  assert.equal(parsePointInTime('2026-11-21T10:00:00Z', now), Date.parse('2026-11-21T10:00:00Z'));
  assert.equal(parsePointInTime('2026-11-21T11:00:00+01:00', now), Date.parse('2026-11-21T10:00:00Z'));
  assert.equal(
    parsePointInTime('2026-11-21T10:00:00.250-02:00', now),
    Date.parse('2026-11-21T12:00:00.250Z'),
  );
});

test('a duration counts back from now', () => {
  assert.equal(parsePointInTime('2h', now), now - 7_200_000);
  assert.equal(parsePointInTime('90s', now), now - 90_000);
});

test('a time without a zone is refused, saying to add Z or an offset', () => {
  for (const text of ['2026-11-21T10:00:00', '2026-11-21 10:00', '2026-11-21']) {
    assert.throws(() => parsePointInTime(text, now), /no time zone: add Z for UTC or an offset like \+01:00/);
  }
});

test('anything else is refused naming both accepted forms', () => {
  assert.throws(() => parsePointInTime('yesterday', now), /ISO-8601 time with a zone .* duration/);
  assert.throws(() => parsePointInTime('2026-13-45T10:00:00Z', now), /not a valid time/);
});
