import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { NotifyEvent } from '../../libs/schemas/types.generated.ts';
import { createChattyGuard } from '../../services/router/chatty-guard.ts';
import { createDedupLedger } from '../../services/router/dedup.ts';
import { notificationId } from '../../services/router/notification-id.ts';
import type { Recipient } from '../../services/router/recipient.ts';
import {
  type ChannelDecision,
  DEFAULT_SUNSET_DAYS,
  type EventRouting,
  type RoutingContext,
  routeEvent,
} from '../../services/router/route.ts';
import { createThrottleLedger } from '../../services/router/throttle.ts';
import { aContext, anEvent, aRecipient, DAY, HOUR, NOW } from './router-fixtures.ts';

function decisionsOf(routing: EventRouting): readonly ChannelDecision[] {
  assert.equal(routing.outcome, 'routed', `expected the event to be routed, got ${JSON.stringify(routing)}`);
  return routing.outcome === 'routed' ? routing.decisions : [];
}

/** "emitted", "folded" or "skipped:<reason>" per channel, for one recipient. */
function outcomes(routing: EventRouting, recipientId = 'u1'): Record<string, string> {
  const result: Record<string, string> = {};
  for (const d of decisionsOf(routing)) {
    if (d.recipientId !== recipientId) continue;
    result[d.channel] = d.outcome === 'skipped' ? `skipped:${d.reason}` : d.outcome;
  }
  return result;
}

function emitted(routing: EventRouting, channel: string, recipientId = 'u1') {
  const d = decisionsOf(routing).find((x) => x.recipientId === recipientId && x.channel === channel);
  assert.ok(d && d.outcome !== 'skipped', `expected a ${channel} record for ${recipientId}`);
  return d;
}

function routeFor(event: NotifyEvent, person: Partial<Recipient>, ctx: Partial<RoutingContext> = {}) {
  return routeEvent(event, aContext({ recipients: new Map([['u1', aRecipient(person)]]), ...ctx }));
}

describe('fan-out', () => {
  test('a talk-page message reaches web, email and push, carrying event time and the person’s locale', () => {
    const event = anEvent();
    const routing = routeFor(event, {});
    assert.deepEqual(outcomes(routing), { web: 'emitted', email: 'emitted', push: 'emitted' });

    const web = emitted(routing, 'web');
    assert.equal(web.channel, 'web');
    assert.deepEqual(web.record.meta, {
      id: web.record.meta.id,
      dt: event.meta.dt,
      stream: 'notify.web',
      dc: 'eqiad',
      producer: 'router',
      request_id: 'req-1',
    });
    assert.deepEqual(web.record.notification, {
      notification_id: notificationId('ev-1', 'u1', 'web'),
      event_id: 'ev-1',
      event_type: 'edit-user-talk',
      category: 'edit-user-talk',
      recipient_id: 'u1',
      agent: { id: 'agent-1', name: 'Alice' },
      title: 'New message on your talk page',
      url: 'https://wiki.example/User_talk:Bob',
      extra: { section: 'Hello' },
      priority: 1,
      bundle_key: 'edit-user-talk',
      locale: 'de',
      timezone: 'Europe/Berlin',
    });
    assert.equal(web.record.folded, false);

    const email = emitted(routing, 'email');
    assert.equal(email.channel, 'email');
    assert.equal(email.record.email, 'u1@example.org');
    assert.equal(email.record.email_frequency, 'instant');
    assert.equal(email.record.notification.notification_id, notificationId('ev-1', 'u1', 'email'));
  });

  test('routing the same event again yields byte-identical records', () => {
    const first = routeEvent(anEvent(), aContext());
    const again = routeEvent(anEvent(), aContext());
    assert.deepEqual(decisionsOf(again), decisionsOf(first));
  });

  test('a recipient listed twice is notified once', () => {
    const routing = routeEvent(anEvent({ recipients: ['u1', 'u1'] }), aContext());
    assert.equal(decisionsOf(routing).length, 3);
  });

  test('missing title and url become empty strings', () => {
    const web = emitted(routeFor(anEvent({ title: null, url: null }), {}), 'web');
    assert.equal(web.record.notification.title, '');
    assert.equal(web.record.notification.url, '');
  });
});

describe('event-level decisions', () => {
  test('an event already fanned out is a duplicate, also when repeated within one batch', () => {
    assert.deepEqual(routeEvent(anEvent(), aContext({ dedup: createDedupLedger(['ev-1']) })), {
      outcome: 'skipped',
      reason: 'duplicate-event',
    });

    const ctx = aContext();
    assert.equal(routeEvent(anEvent(), ctx).outcome, 'routed');
    assert.deepEqual(routeEvent(anEvent(), ctx), { outcome: 'skipped', reason: 'duplicate-event' });
  });

  test('only fanned-out events are recorded as processed', () => {
    const ctx = aContext({ chatty: createChattyGuard({ max: 1, windowMs: HOUR }, []) });
    routeEvent(anEvent({ event_id: 'routed' }), ctx);
    routeEvent(anEvent({ event_id: 'expired', expires_at: NOW - 1 }), ctx);
    routeEvent(anEvent({ event_id: 'unknown', category: 'no-such-category' }), ctx);
    routeEvent(anEvent({ event_id: 'held', recipients: ['u1', 'u2'] }), ctx);
    assert.deepEqual(ctx.dedup.newlyProcessed(), ['routed']);
  });

  test('an event past its expiry is dropped; one expiring later or never is routed', () => {
    assert.deepEqual(routeFor(anEvent({ expires_at: NOW }), {}), { outcome: 'skipped', reason: 'expired' });
    assert.equal(routeFor(anEvent({ expires_at: NOW + 1 }), {}).outcome, 'routed');
    assert.equal(routeFor(anEvent({ expires_at: null }), {}).outcome, 'routed');
  });

  test('an event of an unknown category goes to the DLQ with an error naming the category', () => {
    const routing = routeFor(anEvent({ category: 'edit-user-tlak' }), {});
    assert.equal(routing.outcome, 'dead-letter');
    assert.ok(routing.outcome === 'dead-letter' && routing.error.includes('"edit-user-tlak"'));
  });

  test('a flooding event type is held back, tripping once; other types and released events flow', () => {
    const chatty = createChattyGuard({ max: 3, windowMs: HOUR }, []);
    const ctx = aContext({ chatty });
    const flood = (id: string) => anEvent({ event_id: id, type: 'page-linked', recipients: ['u1', 'u2'] });

    assert.equal(routeEvent(flood('f1'), ctx).outcome, 'routed');
    assert.deepEqual(routeEvent(flood('f2'), ctx), { outcome: 'held', reason: 'chatty-type', tripped: true });
    assert.deepEqual(routeEvent(flood('f3'), ctx), {
      outcome: 'held',
      reason: 'chatty-type',
      tripped: false,
    });
    assert.equal(routeEvent(anEvent({ event_id: 'other', type: 'edit-user-talk' }), ctx).outcome, 'routed');

    const release = aContext({ chatty: null });
    assert.equal(routeEvent(flood('f2'), release).outcome, 'routed');
  });
});

describe('recipient-level decisions', () => {
  test('an unknown or erased person gets nothing; the other recipients are still notified', () => {
    const routing = routeEvent(anEvent({ recipients: ['gone', 'u1'] }), aContext());
    assert.deepEqual(outcomes(routing, 'gone'), {
      web: 'skipped:unknown-recipient',
      email: 'skipped:unknown-recipient',
      push: 'skipped:unknown-recipient',
    });
    assert.deepEqual(outcomes(routing, 'u1'), { web: 'emitted', email: 'emitted', push: 'emitted' });
  });

  test('a person who muted the agent gets nothing, not even the talk-page notice', () => {
    const routing = routeFor(anEvent(), { mutedAgents: ['agent-1'] });
    assert.deepEqual(outcomes(routing), {
      web: 'skipped:agent-muted',
      email: 'skipped:agent-muted',
      push: 'skipped:agent-muted',
    });
  });

  test('a mute does not hide an account security message', () => {
    const event = anEvent({ category: 'login-fail', type: 'login-fail' });
    assert.deepEqual(outcomes(routeFor(event, { mutedAgents: ['agent-1'] })), { email: 'emitted' });
  });

  test('system events without an agent are not affected by mutes', () => {
    assert.deepEqual(outcomes(routeFor(anEvent({ agent: null }), { mutedAgents: ['agent-1'] })), {
      web: 'emitted',
      email: 'emitted',
      push: 'emitted',
    });
  });
});

describe('channel decisions', () => {
  test('turning a channel off skips only that channel, but the talk-page web notice stays', () => {
    const preferences = [
      { category: 'edit-user-talk', channel: 'push' as const, enabled: false },
      { category: 'edit-user-talk', channel: 'web' as const, enabled: false },
    ];
    assert.deepEqual(outcomes(routeFor(anEvent(), { preferences })), {
      web: 'emitted',
      email: 'emitted',
      push: 'skipped:channel-off',
    });
  });

  test('a channel that is off by default is used once the person turns it on', () => {
    const event = anEvent({ category: 'thank-you-edit', type: 'thank-you-edit' });
    assert.deepEqual(outcomes(routeFor(event, {})), {
      web: 'emitted',
      email: 'skipped:channel-off',
      push: 'skipped:channel-off',
    });
    const preferences = [{ category: 'thank-you-edit', channel: 'email' as const, enabled: true }];
    assert.equal(outcomes(routeFor(event, { preferences })).email, 'emitted');
  });

  test('a one-click unsubscribe applies on top of the notify.user preferences', () => {
    const preferences = [{ category: 'edit-user-talk', channel: 'email' as const, enabled: true }];
    const preferenceChanges = [
      { category: null, channel: 'email' as const, enabled: false, changedAt: NOW - HOUR },
    ];
    assert.equal(
      outcomes(routeFor(anEvent(), { preferences, preferenceChanges })).email,
      'skipped:channel-off',
    );
  });

  test('email needs an address', () => {
    assert.equal(outcomes(routeFor(anEvent(), { email: null })).email, 'skipped:no-email-address');
  });

  test('email frequency "never" stops email but not a password reset, which goes out at once', () => {
    assert.equal(outcomes(routeFor(anEvent(), { emailFrequency: 'never' })).email, 'skipped:channel-off');
    assert.equal(
      outcomes(routeFor(anEvent(), { emailFrequency: 'weekly', emailFrequencyChange: 'never' })).email,
      'skipped:channel-off',
    );

    const reset = anEvent({ category: 'password-reset', type: 'password-reset' });
    const email = emitted(routeFor(reset, { emailFrequency: 'never' }), 'email');
    assert.equal(email.channel === 'email' && email.record.email_frequency, 'instant');
  });

  test('digest readers get their frequency on the email record; transactional mail is never digested', () => {
    const digest = emitted(routeFor(anEvent(), { emailFrequency: 'daily' }), 'email');
    assert.equal(digest.channel === 'email' && digest.record.email_frequency, 'daily');

    const loginFail = anEvent({ category: 'login-fail', type: 'login-fail' });
    const mail = emitted(routeFor(loginFail, { emailFrequency: 'weekly' }), 'email');
    assert.equal(mail.channel === 'email' && mail.record.email_frequency, 'instant');
  });

  test('people inactive longer than the sunset period get no email, except transactional mail', () => {
    const lapsed = { lastActive: NOW - 46 * DAY };
    assert.deepEqual(outcomes(routeFor(anEvent(), lapsed)), {
      web: 'emitted',
      email: 'skipped:email-sunset',
      push: 'emitted',
    });
    assert.equal(outcomes(routeFor(anEvent(), { lastActive: NOW - 44 * DAY })).email, 'emitted');
    assert.equal(outcomes(routeFor(anEvent(), { lastActive: null })).email, 'emitted');

    const reset = anEvent({ category: 'password-reset', type: 'password-reset' });
    assert.deepEqual(outcomes(routeFor(reset, lapsed)), { email: 'emitted' });
  });

  test('the sunset period comes from the policy', () => {
    const policy = { sunsetAfterMs: 10 * DAY, emitPush: true };
    assert.equal(
      outcomes(routeFor(anEvent(), { lastActive: NOW - 11 * DAY }, { policy })).email,
      'skipped:email-sunset',
    );
  });
});

test('with the router’s push output off, push is skipped as push-disabled and the rest flows', () => {
  const policy = { sunsetAfterMs: DEFAULT_SUNSET_DAYS * DAY, emitPush: false };
  assert.deepEqual(outcomes(routeFor(anEvent(), {}, { policy })), {
    web: 'emitted',
    email: 'emitted',
    push: 'skipped:push-disabled',
  });
});

describe('bundling', () => {
  const bundleKey = (routing: EventRouting) => emitted(routing, 'email').record.notification.bundle_key;

  test('an event’s bundle key overrides its category’s', () => {
    assert.equal(bundleKey(routeFor(anEvent(), {})), 'edit-user-talk');
    assert.equal(bundleKey(routeFor(anEvent({ bundle_key: 'talk:Bob' }), {})), 'talk:Bob');
  });

  test('transactional mail is never bundled, whatever the event says', () => {
    const reset = anEvent({ category: 'password-reset', type: 'password-reset', bundle_key: 'resets' });
    assert.equal(bundleKey(routeFor(reset, {})), null);
  });
});

describe('per-recipient throttle', () => {
  const mention = (id: string, dt = NOW - 5_000) =>
    anEvent({ event_id: id, category: 'mention', type: 'mention', meta: { ...anEvent().meta, dt } });

  test('beyond the limit a notification is folded into the web inbox and kept off email and push', () => {
    const ctx = aContext();
    routeEvent(mention('m1'), ctx);
    routeEvent(mention('m2'), ctx);
    const third = routeEvent(mention('m3'), ctx);
    assert.deepEqual(outcomes(third), {
      web: 'folded',
      email: 'skipped:throttled',
      push: 'skipped:throttled',
    });
    const web = emitted(third, 'web');
    assert.equal(web.channel === 'web' && web.record.folded, true);
  });

  test('counts stored by earlier batches count, and the next window starts afresh', () => {
    const windowStart = Math.floor((NOW - 5_000) / HOUR) * HOUR;
    const throttle = createThrottleLedger([
      { recipientId: 'u1', category: 'mention', windowStart, count: 2 },
    ]);
    const ctx = aContext({ throttle });
    assert.equal(outcomes(routeEvent(mention('m1'), ctx)).web, 'folded');
    assert.equal(outcomes(routeEvent(mention('m2', windowStart + HOUR), ctx)).web, 'emitted');
  });

  test('notifications the person gets on no channel do not use up the limit', () => {
    const preferences = (['web', 'email', 'push'] as const).map((channel) => ({
      category: 'mention',
      channel,
      enabled: false,
    }));
    const ctx = aContext({ recipients: new Map([['u1', aRecipient({ preferences })]]) });
    routeEvent(mention('m1'), ctx);
    routeEvent(mention('m2'), ctx);
    assert.deepEqual(ctx.throttle.increments(), []);
  });

  test('categories without a throttle are never folded', () => {
    const ctx = aContext();
    const results = ['a', 'b', 'c', 'd'].map((id) => routeEvent(anEvent({ event_id: id }), ctx));
    assert.ok(results.every((r) => outcomes(r).web === 'emitted'));
  });
});
