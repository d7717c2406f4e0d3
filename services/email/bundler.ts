/**
 * Echo-style instant bundling for one (recipient, bundle key): the first notification goes out at
 * once; later ones arriving within the bundle interval after the last mail wait and go out together
 * at (last sent + interval). A flushed bundle counts as a sent mail, so a steady trickle produces at
 * most one mail per interval.
 *
 * Times are event time (meta.dt) and scheduled due times, never the wall clock, so a replay or a
 * backlog drained after an outage takes the same decisions as the first run did.
 */

/** What the store keeps per (recipient, bundle key). */
export interface BundleState {
  /** When the last mail for this key went out (event time of an instant send, or a bundle's due time). */
  readonly lastSentAt: number | null;
  /** Due time of the bundle waiting to go out; null if nothing is held. */
  readonly pendingDueAt: number | null;
}

export const NO_BUNDLE_STATE: BundleState = { lastSentAt: null, pendingDueAt: null };

export interface IncomingNotification {
  /** null: the category never bundles. */
  readonly bundleKey: string | null;
  /** Account and security mail: never bundled, never delayed. */
  readonly transactional: boolean;
  /** meta.dt of the notification. */
  readonly eventTime: number;
}

export type BundleDecision =
  /** Mail it alone, now; `next` is the state to store (unchanged when the key keeps no state). */
  | { readonly action: 'send'; readonly kind: 'instant' | 'transactional'; readonly next: BundleState }
  /** Add it to the held bundle due at `dueAt` (opening that bundle if `next` is new). */
  | { readonly action: 'hold'; readonly dueAt: number; readonly next: BundleState };

export function decideBundling(
  state: BundleState,
  notification: IncomingNotification,
  intervalMs: number,
): BundleDecision {
  if (notification.transactional) return { action: 'send', kind: 'transactional', next: state };
  if (notification.bundleKey === null) return { action: 'send', kind: 'instant', next: state };
  // Something already waits: join it even if its due time has passed (the flush is running late),
  // so the person gets one mail rather than the held bundle plus this one.
  if (state.pendingDueAt !== null) return { action: 'hold', dueAt: state.pendingDueAt, next: state };
  if (state.lastSentAt !== null && notification.eventTime < state.lastSentAt + intervalMs) {
    const dueAt = state.lastSentAt + intervalMs;
    return { action: 'hold', dueAt, next: { lastSentAt: state.lastSentAt, pendingDueAt: dueAt } };
  }
  return {
    action: 'send',
    kind: 'instant',
    next: { lastSentAt: notification.eventTime, pendingDueAt: null },
  };
}

/** The state after the held bundle went out: its due time is the new "last sent". */
export function afterBundleSent(state: BundleState): BundleState {
  return { lastSentAt: state.pendingDueAt ?? state.lastSentAt, pendingDueAt: null };
}

/**
 * A state that can no longer hold anything back: nothing pending and the interval since the last
 * mail is over at `now`. The store may delete it (it behaves exactly like no state at all).
 */
export function isSettled(state: BundleState, now: number, intervalMs: number): boolean {
  return state.pendingDueAt === null && (state.lastSentAt === null || now >= state.lastSentAt + intervalMs);
}
