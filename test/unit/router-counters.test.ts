import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createChattyGuard } from '../../services/router/chatty-guard.ts';
import { createDedupLedger } from '../../services/router/dedup.ts';
import { createThrottleLedger } from '../../services/router/throttle.ts';
import { HOUR, NOW } from './router-fixtures.ts';

const rule = { max: 2, windowMs: HOUR };
const windowStart = Math.floor(NOW / HOUR) * HOUR;

test('throttle: admits up to the limit per recipient, category and window, and reports what it admitted', () => {
  const ledger = createThrottleLedger([]);
  assert.deepEqual(
    [1, 2, 3].map(() => ledger.admit('u1', 'mention', rule, NOW)),
    [true, true, false],
  );
  assert.equal(ledger.admit('u2', 'mention', rule, NOW), true);
  assert.equal(ledger.admit('u1', 'reverted', rule, NOW), true);
  assert.equal(ledger.admit('u1', 'mention', rule, windowStart + HOUR), true);
  assert.deepEqual(
    ledger.increments().map((c) => [c.recipientId, c.category, c.windowStart - windowStart, c.count]),
    [
      ['u1', 'mention', 0, 2],
      ['u2', 'mention', 0, 1],
      ['u1', 'reverted', 0, 1],
      ['u1', 'mention', HOUR, 1],
    ],
  );
});

test('throttle: stored counts use up the limit; the window is by event time', () => {
  const ledger = createThrottleLedger([{ recipientId: 'u1', category: 'mention', windowStart, count: 1 }]);
  assert.equal(ledger.admit('u1', 'mention', rule, windowStart + HOUR - 1), true);
  assert.equal(ledger.admit('u1', 'mention', rule, windowStart), false);
  assert.equal(ledger.admit('u1', 'mention', rule, windowStart - 1), true);
});

test('chatty guard: holds a type once its fan-out in the window passes the cap, tripping once', () => {
  const guard = createChattyGuard({ max: 10, windowMs: HOUR }, []);
  assert.deepEqual(guard.admit('page-linked', NOW, 6), { held: false, tripped: false });
  assert.deepEqual(guard.admit('page-linked', NOW, 4), { held: false, tripped: false });
  assert.deepEqual(guard.admit('page-linked', NOW, 1), { held: true, tripped: true });
  assert.deepEqual(guard.admit('page-linked', NOW, 1), { held: true, tripped: false });
  assert.deepEqual(guard.admit('mention', NOW, 10), { held: false, tripped: false });
  assert.deepEqual(guard.admit('page-linked', windowStart + HOUR, 1), { held: false, tripped: false });
  assert.deepEqual(
    guard.increments().map((v) => [v.type, v.windowStart - windowStart, v.fanOut]),
    [
      ['page-linked', 0, 12],
      ['mention', 0, 10],
      ['page-linked', HOUR, 1],
    ],
  );
});

test('chatty guard: a type already over the cap in storage stays held without tripping again', () => {
  const guard = createChattyGuard({ max: 10, windowMs: HOUR }, [
    { type: 'page-linked', windowStart, fanOut: 11 },
  ]);
  assert.deepEqual(guard.admit('page-linked', NOW, 1), { held: true, tripped: false });
});

test('chatty guard: one event reaching more people than the cap is held on its own', () => {
  const guard = createChattyGuard({ max: 10, windowMs: HOUR }, []);
  assert.deepEqual(guard.admit('mass-message', NOW, 11), { held: true, tripped: true });
});

test('dedup: stored and newly marked events are processed; only the new ones are reported', () => {
  const ledger = createDedupLedger(['old']);
  assert.equal(ledger.isProcessed('old'), true);
  assert.equal(ledger.isProcessed('new'), false);
  ledger.markProcessed('new');
  ledger.markProcessed('old');
  assert.equal(ledger.isProcessed('new'), true);
  assert.deepEqual(ledger.newlyProcessed(), ['new']);
});
