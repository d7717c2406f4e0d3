import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { BounceKind } from '../../libs/schemas/types.generated.ts';
import {
  type AddressState,
  applyBounce,
  CLEAN,
  isSuppressed,
  lift,
  release,
  type SuppressionAction,
  type SuppressionPolicy,
} from '../../services/bounce/suppression-policy.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const T0 = Date.parse('2026-11-21T00:00:00Z');
const POLICY: SuppressionPolicy = { softThreshold: 3, softWindowMs: 7 * DAY, softCooldownMs: 3 * DAY };

/** Applies bounces in order, returning the final state and every action taken. */
function run(events: readonly [BounceKind, number][], from: AddressState = CLEAN) {
  let state = from;
  const actions: SuppressionAction[] = [];
  for (const [kind, at] of events) {
    const t = applyBounce(state, kind, at, POLICY);
    state = t.state;
    actions.push(...t.actions);
  }
  return { state, actions };
}

const types = (actions: readonly SuppressionAction[]) => actions.map((a) => a.type);

describe('hard bounces', () => {
  test('suppress at once, until lifted', () => {
    const { state, actions } = run([['hard', T0]]);
    assert.deepEqual(actions, [
      { type: 'suppress', suppression: { reason: 'hard_bounce', since: T0, until: null } },
    ]);
    assert.ok(isSuppressed(state, T0 + 365 * DAY));
    assert.deepEqual(release(state, T0 + 365 * DAY).actions, []);
  });

  test('a second hard bounce changes nothing', () => {
    const { actions } = run([
      ['hard', T0],
      ['hard', T0 + HOUR],
    ]);
    assert.equal(actions.length, 1);
  });
});

describe('soft bounces', () => {
  test('below the threshold they do not suppress', () => {
    const { state, actions } = run([
      ['soft', T0],
      ['soft', T0 + DAY],
    ]);
    assert.deepEqual(actions, []);
    assert.ok(!isSuppressed(state, T0 + DAY));
  });

  test('the Nth within the window suppresses until the cool-down has passed', () => {
    const at = T0 + 2 * DAY;
    const { state, actions } = run([
      ['soft', T0],
      ['soft', T0 + DAY],
      ['soft', at],
    ]);
    assert.deepEqual(actions, [
      {
        type: 'suppress',
        suppression: { reason: 'soft_bounce', since: at, until: at + POLICY.softCooldownMs },
      },
    ]);
    assert.ok(isSuppressed(state, at + POLICY.softCooldownMs - 1));
    assert.ok(!isSuppressed(state, at + POLICY.softCooldownMs));
  });

  test('bounces older than the window do not count', () => {
    const { actions } = run([
      ['soft', T0],
      ['soft', T0 + DAY],
      ['soft', T0 + 7 * DAY],
      ['soft', T0 + 8 * DAY + HOUR],
    ]);
    assert.deepEqual(actions, [], 'never three within seven days');
  });

  test('the sweep releases after the cool-down, and counting starts afresh', () => {
    const suppressed = run([
      ['soft', T0],
      ['soft', T0 + HOUR],
      ['soft', T0 + 2 * HOUR],
    ]).state;
    const until = T0 + 2 * HOUR + POLICY.softCooldownMs;
    assert.deepEqual(release(suppressed, until - 1), { state: suppressed, actions: [] });
    const released = release(suppressed, until);
    assert.deepEqual(released, { state: CLEAN, actions: [{ type: 'lift' }] });
    assert.deepEqual(run([['soft', until + HOUR]], released.state).actions, []);
  });

  test('soft bounces while suppressed are not counted towards the next suppression', () => {
    const { state } = run([
      ['soft', T0],
      ['soft', T0 + HOUR],
      ['soft', T0 + 2 * HOUR],
      ['soft', T0 + 3 * HOUR],
      ['soft', T0 + 4 * HOUR],
    ]);
    assert.equal(state.suppression?.since, T0 + 2 * HOUR, 'the late bounces did not extend it');
    assert.deepEqual(state.softBounces, []);
  });

  test('a bounce after the cool-down lifts the expired suppression even if the sweep has not run', () => {
    const suppressed = run([
      ['soft', T0],
      ['soft', T0 + HOUR],
      ['soft', T0 + 2 * HOUR],
    ]).state;
    const { state, actions } = run([['soft', T0 + 10 * DAY]], suppressed);
    assert.deepEqual(actions, [{ type: 'lift' }]);
    assert.deepEqual(state, { suppression: null, softBounces: [T0 + 10 * DAY] });
  });

  test('a hard bounce turns a soft suppression into a permanent one; a soft bounce never weakens a hard one', () => {
    const { state, actions } = run([
      ['soft', T0],
      ['soft', T0 + HOUR],
      ['soft', T0 + 2 * HOUR],
      ['hard', T0 + 3 * HOUR],
      ['soft', T0 + 4 * HOUR],
    ]);
    assert.deepEqual(types(actions), ['suppress', 'suppress']);
    assert.deepEqual(state.suppression, { reason: 'hard_bounce', since: T0 + 3 * HOUR, until: null });
  });
});

describe('complaints', () => {
  test('suppress and turn the person’s email off', () => {
    const { state, actions } = run([['complaint', T0]]);
    assert.deepEqual(actions, [
      { type: 'suppress', suppression: { reason: 'complaint', since: T0, until: null } },
      { type: 'disable-email' },
    ]);
    assert.ok(isSuppressed(state, T0 + 365 * DAY));
  });

  test('replace a hard-bounce suppression, and are not replaced by one', () => {
    const { state, actions } = run([
      ['hard', T0],
      ['complaint', T0 + HOUR],
      ['hard', T0 + 2 * HOUR],
    ]);
    assert.deepEqual(types(actions), ['suppress', 'suppress', 'disable-email']);
    assert.equal(state.suppression?.reason, 'complaint');
  });
});

describe('operator lift', () => {
  test('lifts any suppression and forgets the soft-bounce count', () => {
    const complained = run([['complaint', T0]]).state;
    assert.deepEqual(lift(complained), { state: CLEAN, actions: [{ type: 'lift' }] });
    const counting = run([['soft', T0]]).state;
    assert.deepEqual(lift(counting), { state: CLEAN, actions: [] });
  });
});
