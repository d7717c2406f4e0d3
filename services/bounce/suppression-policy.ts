/**
 * Per-address suppression state machine. Pure: the caller loads an address's state, applies one
 * event with its time, stores the new state and carries out the actions (publish to
 * notify.suppression, a tombstone, a preference change).
 *
 *   hard bounce → suppressed until lifted
 *   soft bounce → counted; the Nth within the window suppresses until a cool-down has passed
 *   complaint   → suppressed until lifted, and the person's email turned off (every time: the
 *                 preference change is idempotent, and a repeat means mail still reached them)
 *   release     → a soft suppression whose cool-down is over is lifted (a sweep drives this)
 *   lift        → an operator lifts any suppression
 *
 * A stronger reason replaces a weaker one (complaint > hard > soft) and never the other way: a soft
 * bounce from mail still in flight does not shorten a hard suppression. Soft bounces arriving while
 * suppressed are not counted, so a cool-down always starts afresh with a clean count.
 */
import type { BounceKind, SuppressionReason } from '../../libs/schemas/types.generated.ts';

export interface SuppressionPolicy {
  /** Soft bounces within the window that suppress (the Nth suppresses). */
  readonly softThreshold: number;
  readonly softWindowMs: number;
  /** How long a soft-bounce suppression lasts. */
  readonly softCooldownMs: number;
}

export interface Suppression {
  readonly reason: SuppressionReason;
  /** ms since the epoch. */
  readonly since: number;
  /** ms since the epoch; null until lifted. */
  readonly until: number | null;
}

export interface AddressState {
  readonly suppression: Suppression | null;
  /** Times of soft bounces still inside the window, oldest first. */
  readonly softBounces: readonly number[];
}

export type SuppressionAction =
  | { readonly type: 'suppress'; readonly suppression: Suppression }
  | { readonly type: 'lift' }
  | { readonly type: 'disable-email' };

export interface Transition {
  readonly state: AddressState;
  readonly actions: readonly SuppressionAction[];
}

export const CLEAN: AddressState = { suppression: null, softBounces: [] };

const STRENGTH: Record<SuppressionReason, number> = {
  soft_bounce: 1,
  hard_bounce: 2,
  manual: 2,
  complaint: 3,
};

/** One bounce or complaint at `now` (its event time, so replays decide alike). */
export function applyBounce(
  state: AddressState,
  kind: BounceKind,
  now: number,
  policy: SuppressionPolicy,
): Transition {
  // A suppression whose time is up is lifted first, so this bounce counts towards a fresh one.
  const released = release(state, now);
  const next = decide(released.state, kind, now, policy);
  return { state: next.state, actions: [...released.actions, ...next.actions] };
}

function decide(state: AddressState, kind: BounceKind, now: number, policy: SuppressionPolicy): Transition {
  if (kind === 'complaint') {
    const escalated = escalate(state, 'complaint', now, null);
    return { state: escalated.state, actions: [...escalated.actions, { type: 'disable-email' }] };
  }
  if (kind === 'hard') return escalate(state, 'hard_bounce', now, null);

  if (state.suppression) return { state, actions: [] };
  const softBounces = [...state.softBounces.filter((t) => now - t < policy.softWindowMs), now];
  if (softBounces.length < policy.softThreshold)
    return { state: { suppression: null, softBounces }, actions: [] };
  return escalate({ suppression: null, softBounces: [] }, 'soft_bounce', now, now + policy.softCooldownMs);
}

/** Lifts a suppression whose time is up; the periodic sweep calls this with the current time. */
export function release(state: AddressState, now: number): Transition {
  const until = state.suppression?.until;
  if (until === undefined || until === null || now < until) return { state, actions: [] };
  return { state: CLEAN, actions: [{ type: 'lift' }] };
}

/** An operator lifts whatever suppression there is and forgets the soft-bounce count. */
export function lift(state: AddressState): Transition {
  return { state: CLEAN, actions: state.suppression ? [{ type: 'lift' }] : [] };
}

/** Whether mail to the address must be skipped at `now`. */
export const isSuppressed = (state: AddressState, now: number): boolean =>
  state.suppression !== null && (state.suppression.until === null || now < state.suppression.until);

function escalate(
  state: AddressState,
  reason: SuppressionReason,
  now: number,
  until: number | null,
): Transition {
  const current = state.suppression;
  if (current && STRENGTH[current.reason] >= STRENGTH[reason] && current.until === null) {
    return { state, actions: [] };
  }
  const suppression: Suppression = { reason, since: now, until };
  return { state: { suppression, softBounces: [] }, actions: [{ type: 'suppress', suppression }] };
}
