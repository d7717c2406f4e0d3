import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  createSendRateLimiter,
  rampDayEnd,
  rampDayOf,
  type SendRateOptions,
  validateSendRate,
} from '../../services/email/send-rate.ts';

const DAY = 86_400_000;
const START = Date.UTC(2026, 10, 1);
const options: SendRateOptions = { rampStart: START, dailyCaps: [3, 5, 8], perSecond: 1000, burst: 1000 };

function sendUntilRefused(limiter: ReturnType<typeof createSendRateLimiter>, now: number): number {
  let sent = 0;
  while (limiter.tryAcquire(now).ok) sent++;
  return sent;
}

describe('warm-up ramp', () => {
  test('each day allows its cap, and the last cap holds once the ramp is over', () => {
    const limiter = createSendRateLimiter(options);
    assert.equal(sendUntilRefused(limiter, START + 1000), 3);
    assert.equal(sendUntilRefused(limiter, START + DAY + 1000), 5);
    assert.equal(sendUntilRefused(limiter, START + 2 * DAY + 1000), 8);
    assert.equal(sendUntilRefused(limiter, START + 30 * DAY + 1000), 8);
  });

  test('a refusal for the day says when the next ramp day begins', () => {
    const limiter = createSendRateLimiter(options);
    sendUntilRefused(limiter, START + 1000);
    assert.deepEqual(limiter.tryAcquire(START + 2000), {
      ok: false,
      reason: 'daily-cap',
      retryAt: START + DAY,
    });
  });

  test('only acquired sends count: a refunded send (never reached the server) gives its slot back', () => {
    const limiter = createSendRateLimiter(options);
    assert.equal(limiter.tryAcquire(START).ok, true);
    limiter.refund(START);
    assert.equal(sendUntilRefused(limiter, START + 1000), 3);
  });

  test('a restart resumes from the stored count of the same day', () => {
    const first = createSendRateLimiter(options);
    first.tryAcquire(START + 1000);
    first.tryAcquire(START + 1000);
    const restarted = createSendRateLimiter(options, first.snapshot());
    assert.equal(sendUntilRefused(restarted, START + 5000), 1);
    assert.equal(restarted.capFor(START + 5000), 3);
  });
});

describe('per-second bucket', () => {
  test('allows a burst, then refills at the configured rate', () => {
    const limiter = createSendRateLimiter({
      rampStart: START,
      dailyCaps: [1_000_000],
      perSecond: 10,
      burst: 5,
    });
    const t = START + 1000;
    assert.equal(sendUntilRefused(limiter, t), 5);
    const refused = limiter.tryAcquire(t);
    assert.deepEqual(refused, { ok: false, reason: 'per-second', retryAt: t + 100 });
    assert.equal(limiter.tryAcquire(t + 99).ok, false);
    assert.equal(limiter.tryAcquire(t + 100).ok, true);
    assert.equal(sendUntilRefused(limiter, t + 1100), 5, 'never more than the burst after a pause');
  });

  test('a clock going backwards does not mint tokens', () => {
    const limiter = createSendRateLimiter({ rampStart: START, dailyCaps: [100], perSecond: 1, burst: 1 });
    assert.equal(limiter.tryAcquire(START + 10_000).ok, true);
    assert.equal(limiter.tryAcquire(START + 5_000).ok, false);
    assert.equal(limiter.tryAcquire(START + 10_500).ok, false);
    assert.equal(limiter.tryAcquire(START + 11_000).ok, true);
  });
});

test('an impossible configuration is refused, naming each problem', () => {
  const problems = validateSendRate({ rampStart: START, dailyCaps: [], perSecond: 0, burst: 0 });
  assert.equal(problems.length, 3);
  assert.throws(
    () => createSendRateLimiter({ ...options, dailyCaps: [10, -1] }),
    /daily caps must be integers/,
  );
});

test('ramp days count whole days from the start, and none before it', () => {
  assert.equal(rampDayOf(START, START - 1), 0);
  assert.equal(rampDayOf(START, START + DAY - 1), 0);
  assert.equal(rampDayOf(START, START + DAY), 1);
  assert.equal(rampDayEnd(START, 1), START + 2 * DAY);
});
