/**
 * Guard against a chatty event type (Echo's rollout worry: an extension that suddenly notifies far
 * too much). The fan-out of each event type, i.e. its recipients, is summed per fixed window of
 * event time (event-window.ts). Once a type's sum passes the cap, its events are held back (the
 * wiring parks them on a hold topic) instead of being fanned out, until the window ends. An
 * operator then releases the held events (routed again without the guard) or drops them.
 *
 * Held events count too, so a flood keeps its type held for the rest of the window; a single event
 * whose recipients alone exceed the cap is always held: that is a flood in one record.
 *
 * State lives in type_volume (event_type, window_start) -> fan_out, shared by router instances so
 * the cap is per type, not per instance. The wiring loads it for a batch's keys (see prefetch.ts)
 * and adds `increments()` after producing.
 */
import { windowStart } from './event-window.ts';

export interface ChattyCap {
  /** Most recipients one event type may reach per window. */
  readonly max: number;
  readonly windowMs: number;
}

export interface TypeVolume {
  readonly type: string;
  /** ms since the epoch, a multiple of the cap's window. */
  readonly windowStart: number;
  readonly fanOut: number;
}

export type TypeVolumeKey = Omit<TypeVolume, 'fanOut'>;

export interface ChattyVerdict {
  readonly held: boolean;
  /** This event pushed its type over the cap: the moment to log an error, once per flood and window. */
  readonly tripped: boolean;
}

export interface ChattyGuard {
  admit(type: string, eventTime: number, fanOut: number): ChattyVerdict;
  /** Fan-out seen in this batch, held or not, to add to the stored volumes. */
  increments(): TypeVolume[];
  /** Volumes loaded for a later slice of the same batch; a key already loaded keeps its volume. */
  addStored(stored: Iterable<TypeVolume>): void;
}

export function typeVolumeKey(cap: ChattyCap, type: string, eventTime: number): TypeVolumeKey {
  return { type, windowStart: windowStart(cap.windowMs, eventTime) };
}

/** A TypeVolumeKey as one string, for maps and sets. */
export const typeVolumeKeyText = (k: TypeVolumeKey): string => JSON.stringify([k.type, k.windowStart]);

export function createChattyGuard(cap: ChattyCap, stored: Iterable<TypeVolume>): ChattyGuard {
  const storedVolumes = new Map<string, number>();
  for (const v of stored) storedVolumes.set(typeVolumeKeyText(v), v.fanOut);
  const added = new Map<string, TypeVolume>();

  return {
    admit(type, eventTime, fanOut) {
      const key = typeVolumeKey(cap, type, eventTime);
      const k = typeVolumeKeyText(key);
      const mine = added.get(k)?.fanOut ?? 0;
      const before = (storedVolumes.get(k) ?? 0) + mine;
      added.set(k, { ...key, fanOut: mine + fanOut });
      const held = before + fanOut > cap.max;
      return { held, tripped: held && before <= cap.max };
    },
    increments: () => [...added.values()],
    addStored(more) {
      for (const v of more) {
        const k = typeVolumeKeyText(v);
        if (!storedVolumes.has(k)) storedVolumes.set(k, v.fanOut);
      }
    },
  };
}
