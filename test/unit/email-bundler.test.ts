import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  afterBundleSent,
  type BundleState,
  decideBundling,
  isSettled,
  NO_BUNDLE_STATE,
} from '../../services/email/bundler.ts';

const MIN = 60_000;
const INTERVAL = 30 * MIN;
const T0 = Date.UTC(2026, 10, 21, 12, 0, 0);

const talk = (eventTime: number) => ({ bundleKey: 'edit-user-talk', transactional: false, eventTime });

describe('Echo-style bundling', () => {
  test('the first notification goes out at once and starts the interval', () => {
    const decision = decideBundling(NO_BUNDLE_STATE, talk(T0), INTERVAL);
    assert.deepEqual(decision, {
      action: 'send',
      kind: 'instant',
      next: { lastSentAt: T0, pendingDueAt: null },
    });
  });

  test('later ones within the interval wait together until last sent + interval', () => {
    let state: BundleState = decideBundling(NO_BUNDLE_STATE, talk(T0), INTERVAL).next;
    const second = decideBundling(state, talk(T0 + 5 * MIN), INTERVAL);
    assert.deepEqual(second, {
      action: 'hold',
      dueAt: T0 + INTERVAL,
      next: { lastSentAt: T0, pendingDueAt: T0 + INTERVAL },
    });
    state = second.next;
    const third = decideBundling(state, talk(T0 + 20 * MIN), INTERVAL);
    assert.deepEqual(third, { action: 'hold', dueAt: T0 + INTERVAL, next: state });
  });

  test('a held bundle is joined even after its due time passed, so the person gets one mail', () => {
    const state: BundleState = { lastSentAt: T0, pendingDueAt: T0 + INTERVAL };
    const late = decideBundling(state, talk(T0 + INTERVAL + 10 * MIN), INTERVAL);
    assert.deepEqual(late, { action: 'hold', dueAt: T0 + INTERVAL, next: state });
  });

  test('after a bundle went out, the next interval counts from its due time', () => {
    const flushed = afterBundleSent({ lastSentAt: T0, pendingDueAt: T0 + INTERVAL });
    assert.deepEqual(flushed, { lastSentAt: T0 + INTERVAL, pendingDueAt: null });
    const soon = decideBundling(flushed, talk(T0 + INTERVAL + MIN), INTERVAL);
    assert.deepEqual(soon, {
      action: 'hold',
      dueAt: T0 + 2 * INTERVAL,
      next: { lastSentAt: T0 + INTERVAL, pendingDueAt: T0 + 2 * INTERVAL },
    });
  });

  test('once the interval is over a notification goes out at once again', () => {
    const state: BundleState = { lastSentAt: T0, pendingDueAt: null };
    const decision = decideBundling(state, talk(T0 + INTERVAL), INTERVAL);
    assert.equal(decision.action, 'send');
    assert.deepEqual(decision.next, { lastSentAt: T0 + INTERVAL, pendingDueAt: null });
  });

  test('transactional mail is never held, even inside an interval, and leaves the state alone', () => {
    const state: BundleState = { lastSentAt: T0, pendingDueAt: T0 + INTERVAL };
    const reset = { bundleKey: 'edit-user-talk', transactional: true, eventTime: T0 + MIN };
    assert.deepEqual(decideBundling(state, reset, INTERVAL), {
      action: 'send',
      kind: 'transactional',
      next: state,
    });
  });

  test('a category without a bundle key is mailed at once every time', () => {
    const state: BundleState = { lastSentAt: T0, pendingDueAt: null };
    const mention = { bundleKey: null, transactional: false, eventTime: T0 + MIN };
    assert.deepEqual(decideBundling(state, mention, INTERVAL), {
      action: 'send',
      kind: 'instant',
      next: state,
    });
  });

  test('a state is settled only when nothing waits and the interval is over', () => {
    assert.equal(isSettled({ lastSentAt: T0, pendingDueAt: null }, T0 + INTERVAL - 1, INTERVAL), false);
    assert.equal(isSettled({ lastSentAt: T0, pendingDueAt: null }, T0 + INTERVAL, INTERVAL), true);
    assert.equal(
      isSettled({ lastSentAt: T0, pendingDueAt: T0 + INTERVAL }, T0 + 5 * INTERVAL, INTERVAL),
      false,
    );
  });
});
