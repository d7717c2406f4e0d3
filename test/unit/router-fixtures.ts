/** Shared builders for the router's unit tests: a small registry, events, people and contexts. */
import type { NotifyEvent } from '../../libs/schemas/types.generated.ts';
import { type Category, parseCategoryRegistry } from '../../services/router/categories.ts';
import { createDedupLedger } from '../../services/router/dedup.ts';
import type { Recipient } from '../../services/router/recipient.ts';
import { DEFAULT_SUNSET_DAYS, type RoutingContext } from '../../services/router/route.ts';
import { createThrottleLedger } from '../../services/router/throttle.ts';

export const NOW = Date.UTC(2025, 0, 15, 12, 0, 0);
export const HOUR = 3_600_000;
export const DAY = 24 * HOUR;

export const registry = parseCategoryRegistry(
  {
    categories: {
      'edit-user-talk': {
        priority: 1,
        channels: { web: 'always', email: 'on', push: 'on' },
        bundle_key: 'edit-user-talk',
      },
      mention: {
        priority: 2,
        channels: { web: 'on', email: 'on', push: 'on' },
        throttle: { max: 2, per: '1h' },
      },
      'thank-you-edit': { priority: 4, channels: { web: 'on', email: 'off', push: 'off' } },
      'login-fail': { priority: 0, channels: { email: 'on' }, transactional: true },
      'password-reset': { priority: 0, channels: { email: 'always' }, transactional: true },
    },
  },
  'test registry',
);

export function categoryNamed(name: string): Category {
  const category = registry.get(name);
  if (!category) throw new Error(`no category ${name} in the test registry`);
  return category;
}

export function anEvent(overrides: Partial<NotifyEvent> = {}): NotifyEvent {
  return {
    meta: {
      id: '6f1c2a9e-8d3b-4c1a-9e2f-1a2b3c4d5e6f',
      dt: NOW - 5_000,
      stream: 'notify.event',
      dc: 'codfw',
      producer: 'wiki',
      request_id: 'req-1',
    },
    event_id: 'ev-1',
    type: 'edit-user-talk',
    category: 'edit-user-talk',
    agent: { id: 'agent-1', name: 'Alice' },
    recipients: ['u1'],
    title: 'New message on your talk page',
    url: 'https://wiki.example/User_talk:Bob',
    extra: { section: 'Hello' },
    bundle_key: null,
    expires_at: null,
    ...overrides,
  };
}

export function aRecipient(overrides: Partial<Recipient> = {}): Recipient {
  return {
    userId: 'u1',
    email: 'u1@example.org',
    locale: 'de',
    timezone: 'Europe/Berlin',
    lastActive: NOW - DAY,
    emailFrequency: 'instant',
    preferences: [],
    mutedAgents: [],
    preferenceChanges: [],
    emailFrequencyChange: null,
    ...overrides,
  };
}

export function aContext(overrides: Partial<RoutingContext> = {}): RoutingContext {
  return {
    registry,
    recipients: new Map([['u1', aRecipient()]]),
    dedup: createDedupLedger([]),
    throttle: createThrottleLedger([]),
    chatty: null,
    policy: { sunsetAfterMs: DEFAULT_SUNSET_DAYS * DAY, emitPush: true },
    origin: { dc: 'eqiad', producer: 'router' },
    now: NOW,
    ...overrides,
  };
}
