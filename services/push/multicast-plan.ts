/**
 * Splits a window's devices into multicasts: one message kind per provider and app (each app has
 * its own APNs topic and its own handling of the nudge), at most `maxTokens` tokens per call.
 */
import type { PushProvider } from '../../libs/schemas/types.generated.ts';

export const FCM_MULTICAST_LIMIT = 500;

export interface Target {
  recipient: string;
  provider: PushProvider;
  app: string;
  token: string;
  tokenHash: string;
}

export interface Multicast {
  provider: PushProvider;
  app: string;
  targets: Target[];
}

export function planMulticasts(targets: readonly Target[], maxTokens = FCM_MULTICAST_LIMIT): Multicast[] {
  const kinds = new Map<string, Target[]>();
  for (const target of targets) {
    const kind = `${target.provider}\u0000${target.app}`;
    const list = kinds.get(kind) ?? [];
    list.push(target);
    kinds.set(kind, list);
  }
  const plan: Multicast[] = [];
  for (const list of kinds.values()) {
    const { provider, app } = list[0]!;
    for (let i = 0; i < list.length; i += maxTokens) {
      plan.push({ provider, app, targets: list.slice(i, i + maxTokens) });
    }
  }
  return plan;
}
