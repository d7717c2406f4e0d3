/**
 * What a fetched batch needs loaded before it is routed, so the wiring reads each kind of state in
 * one query per batch (never one per record): processed event ids, recipients with their
 * preferences, throttle counts and event-type volumes.
 */
import type { NotifyEvent } from '../../libs/schemas/types.generated.ts';
import type { CategoryRegistry } from './categories.ts';
import { type ChattyCap, type TypeVolumeKey, typeVolumeKey, typeVolumeKeyText } from './chatty-guard.ts';
import { type ThrottleKey, throttleKey, throttleKeyText } from './throttle.ts';

export interface BatchKeys {
  readonly eventIds: string[];
  readonly recipientIds: string[];
  readonly throttleKeys: ThrottleKey[];
  readonly typeVolumeKeys: TypeVolumeKey[];
}

function distinct<T>(items: Iterable<T>, keyOf: (item: T) => string): T[] {
  const seen = new Map<string, T>();
  for (const item of items) {
    const key = keyOf(item);
    if (!seen.has(key)) seen.set(key, item);
  }
  return [...seen.values()];
}

function* throttleKeysOf(event: NotifyEvent, registry: CategoryRegistry): Generator<ThrottleKey> {
  const rule = registry.get(event.category)?.throttle;
  if (!rule) return;
  for (const recipientId of event.recipients)
    yield throttleKey(recipientId, event.category, rule, event.meta.dt);
}

export function batchKeys(
  events: readonly NotifyEvent[],
  registry: CategoryRegistry,
  cap: ChattyCap,
): BatchKeys {
  return {
    eventIds: [...new Set(events.map((e) => e.event_id))],
    recipientIds: [...new Set(events.flatMap((e) => e.recipients))],
    throttleKeys: distinct(
      events.flatMap((e) => [...throttleKeysOf(e, registry)]),
      throttleKeyText,
    ),
    typeVolumeKeys: distinct(
      events.map((e) => typeVolumeKey(cap, e.type, e.meta.dt)),
      typeVolumeKeyText,
    ),
  };
}
