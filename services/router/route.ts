/**
 * Echo's rules for turning one upstream event into notifications: one decision per recipient and
 * channel, each either a record to emit or a skip with its reason, for metrics.
 *
 * For the event as a whole, in order:
 *   an event already fanned out is a duplicate; an event past its expires_at is dropped; an event
 *   of an unknown category goes to the DLQ; an event type flooding the system is held back.
 * Then for each recipient:
 *   unknown or erased people get nothing; people who muted the agent get nothing (transactional
 *   mail excepted); then each channel of the category is open or closed by the person's choices,
 *   and email also by having an address and by sunsetting, push also by the router's push switch;
 *   finally a throttled person still gets the notification in the web inbox, folded, but not on
 *   email or push.
 *
 * The function is pure apart from the ledgers in the context (dedup, throttle, chatty guard), which
 * carry state across the events of one fetched batch; see their modules for what the wiring stores.
 */
import type { Channel, EmailFrequency, NotifyEvent } from '../../libs/schemas/types.generated.ts';
import type { Category, CategoryRegistry } from './categories.ts';
import {
  type Emission,
  emailEmission,
  type NotificationSource,
  type Origin,
  pushEmission,
  webEmission,
} from './channel-records.ts';
import type { ChattyGuard } from './chatty-guard.ts';
import type { DedupLedger } from './dedup.ts';
import { emailFrequencyOf, hasMuted, isSunset, type Recipient, wantsChannel } from './recipient.ts';
import type { ThrottleLedger } from './throttle.ts';

export const DELIVERY_SKIP_REASONS = [
  'unknown-recipient',
  'agent-muted',
  'channel-off',
  'no-email-address',
  'email-sunset',
  'throttled',
  'push-disabled',
] as const;
export type DeliverySkipReason = (typeof DELIVERY_SKIP_REASONS)[number];

export type ChannelDecision =
  | (Emission & { readonly outcome: 'emitted' | 'folded'; readonly recipientId: string })
  | {
      readonly outcome: 'skipped';
      readonly channel: Channel;
      readonly recipientId: string;
      readonly reason: DeliverySkipReason;
    };

export type EventRouting =
  | {
      readonly outcome: 'routed';
      readonly category: Category;
      readonly decisions: readonly ChannelDecision[];
    }
  | { readonly outcome: 'skipped'; readonly reason: 'duplicate-event' | 'expired' }
  | { readonly outcome: 'dead-letter'; readonly reason: 'unknown-category'; readonly error: string }
  | { readonly outcome: 'held'; readonly reason: 'chatty-type'; readonly tripped: boolean };

export const DEFAULT_SUNSET_DAYS = 45;

export interface RoutingPolicy {
  /** No email (transactional excepted) to people inactive for longer than this. */
  readonly sunsetAfterMs: number;
  /** False: no push notification is produced at all (ROUTER_EMIT_PUSH), skipped as push-disabled. */
  readonly emitPush: boolean;
}

export interface DeliveryContext {
  readonly throttle: ThrottleLedger;
  readonly policy: RoutingPolicy;
  readonly origin: Origin;
  /** ms since the epoch. */
  readonly now: number;
}

export interface RoutingContext extends DeliveryContext {
  readonly registry: CategoryRegistry;
  /** The batch's recipients as loaded; an id missing here is unknown or erased. */
  readonly recipients: ReadonlyMap<string, Recipient>;
  readonly dedup: DedupLedger;
  /** null when routing events released from the hold topic: an operator already let them through. */
  readonly chatty: ChattyGuard | null;
}

type Gate = { readonly channel: Channel; readonly closedBy: DeliverySkipReason | null };

export function routeEvent(event: NotifyEvent, ctx: RoutingContext): EventRouting {
  if (ctx.dedup.isProcessed(event.event_id)) return { outcome: 'skipped', reason: 'duplicate-event' };
  if (isExpired(event, ctx.now)) return { outcome: 'skipped', reason: 'expired' };
  const category = ctx.registry.get(event.category);
  if (!category) {
    const error = `unknown category ${JSON.stringify(event.category)}: not in the category registry`;
    return { outcome: 'dead-letter', reason: 'unknown-category', error };
  }
  const recipientIds = [...new Set(event.recipients)];
  const verdict = ctx.chatty?.admit(event.type, event.meta.dt, recipientIds.length);
  if (verdict?.held) return { outcome: 'held', reason: 'chatty-type', tripped: verdict.tripped };

  const decisions = recipientIds.flatMap((id) =>
    routeToRecipient(event, category, id, ctx.recipients.get(id), ctx),
  );
  ctx.dedup.markProcessed(event.event_id);
  return { outcome: 'routed', category, decisions };
}

export function routeToRecipient(
  event: NotifyEvent,
  category: Category,
  recipientId: string,
  recipient: Recipient | undefined,
  ctx: DeliveryContext,
): ChannelDecision[] {
  const channels = [...category.channels.keys()];
  if (!recipient) return channels.map((channel) => skipped(recipientId, channel, 'unknown-recipient'));
  if (isMutedBy(recipient, event, category))
    return channels.map((channel) => skipped(recipientId, channel, 'agent-muted'));

  const gates: Gate[] = channels.map((channel) => ({
    channel,
    closedBy: closedBy(channel, category, recipient, ctx),
  }));
  const throttled = gates.some((g) => g.closedBy === null) && isThrottled(event, category, recipient, ctx);
  const source: NotificationSource = {
    event,
    category,
    recipient,
    bundleKey: bundleKeyFor(event, category),
    origin: ctx.origin,
  };
  return gates.map(({ channel, closedBy }) => {
    if (closedBy !== null) return skipped(recipientId, channel, closedBy);
    return throttled ? fold(channel, source) : emit(channel, source);
  });
}

function isExpired(event: NotifyEvent, now: number): boolean {
  return event.expires_at !== null && event.expires_at <= now;
}

/** A mute never hides an account or security message: the muted one may be who tries to break in. */
function isMutedBy(recipient: Recipient, event: NotifyEvent, category: Category): boolean {
  return !category.transactional && hasMuted(recipient, event.agent);
}

/**
 * The gates a channel passes, in order: the first that closes decides the skip reason. One table
 * for routing and for `tidings explain`, so an explanation can never differ from the decision.
 */
interface ChannelGate {
  readonly reason: DeliverySkipReason;
  /** What an open gate means, for explanations. */
  readonly passes: string;
  closes(channel: Channel, category: Category, recipient: Recipient, ctx: DeliveryContext): boolean;
}

const CHANNEL_GATES: readonly ChannelGate[] = [
  {
    reason: 'channel-off',
    passes: 'the category is on for this channel (default or the person’s choice)',
    closes: (channel, category, recipient) => !wantsChannel(recipient, category, channel),
  },
  {
    reason: 'no-email-address',
    passes: 'the person has an email address',
    closes: (channel, _category, recipient) => channel === 'email' && recipient.email === null,
  },
  {
    // Sunsetting protects sender reputation; transactional mail (password reset) must reach everyone.
    reason: 'email-sunset',
    passes: 'active recently enough for non-transactional mail, or transactional',
    closes: (channel, category, recipient, ctx) =>
      channel === 'email' &&
      !category.transactional &&
      isSunset(recipient, ctx.now, ctx.policy.sunsetAfterMs),
  },
  {
    reason: 'push-disabled',
    passes: 'the router produces push (ROUTER_EMIT_PUSH)',
    closes: (channel, _category, _recipient, ctx) => channel === 'push' && !ctx.policy.emitPush,
  },
];

function closedBy(
  channel: Channel,
  category: Category,
  recipient: Recipient,
  ctx: DeliveryContext,
): DeliverySkipReason | null {
  return CHANNEL_GATES.find((gate) => gate.closes(channel, category, recipient, ctx))?.reason ?? null;
}

export interface GateVerdict {
  readonly channel: Channel | null;
  readonly gate: string;
  readonly verdict: 'pass' | 'closed';
  readonly detail: string;
}

/**
 * Every gate one person's notification of this event meets, each with its verdict (not only the
 * first that closes), for `tidings explain`. The throttle is asked as for one more notification.
 */
export function explainRecipient(
  event: NotifyEvent,
  category: Category,
  recipientId: string,
  recipient: Recipient | undefined,
  ctx: DeliveryContext,
): GateVerdict[] {
  const verdict = (channel: Channel | null, gate: string, closed: boolean, detail: string): GateVerdict => ({
    channel,
    gate,
    verdict: closed ? 'closed' : 'pass',
    detail,
  });
  if (!recipient)
    return [verdict(null, 'unknown-recipient', true, `no person ${recipientId} (unknown or erased)`)];
  const out = [
    verdict(
      null,
      'agent-muted',
      isMutedBy(recipient, event, category),
      event.agent === null
        ? 'no agent'
        : `agent ${event.agent.id}${category.transactional ? ', transactional: mutes do not apply' : ''}`,
    ),
  ];
  for (const channel of category.channels.keys()) {
    for (const gate of CHANNEL_GATES) {
      const closed = gate.closes(channel, category, recipient, ctx);
      out.push(verdict(channel, gate.reason, closed, closed ? gate.reason : gate.passes));
    }
  }
  const throttled = isThrottled(event, category, recipient, ctx);
  out.push(
    verdict(
      null,
      'throttled',
      throttled,
      category.throttle === null
        ? 'the category has no throttle'
        : `${category.throttle.max} per ${category.throttle.windowMs} ms; over it, web is folded and email and push skipped`,
    ),
  );
  return out;
}

/** Counts the notification against the person's throttle; transactional categories have none (registry rule). */
function isThrottled(
  event: NotifyEvent,
  category: Category,
  recipient: Recipient,
  ctx: DeliveryContext,
): boolean {
  return (
    category.throttle !== null &&
    !ctx.throttle.admit(recipient.userId, category.name, category.throttle, event.meta.dt)
  );
}

function bundleKeyFor(event: NotifyEvent, category: Category): string | null {
  return category.transactional ? null : (event.bundle_key ?? category.bundleKey);
}

/**
 * Transactional mail goes out at once, never in a digest. "never" reaches this point only for an
 * "always" email channel, which the person cannot turn off: it goes out at once too.
 */
function deliveryFrequency(category: Category, recipient: Recipient): EmailFrequency {
  const frequency = emailFrequencyOf(recipient);
  return category.transactional || frequency === 'never' ? 'instant' : frequency;
}

function emit(channel: Channel, source: NotificationSource): ChannelDecision {
  const recipientId = source.recipient.userId;
  switch (channel) {
    case 'web':
      return { outcome: 'emitted', recipientId, ...webEmission(source, false) };
    case 'email': {
      // emailClosedBy let email through only with an address.
      const address = source.recipient.email!;
      const frequency = deliveryFrequency(source.category, source.recipient);
      return { outcome: 'emitted', recipientId, ...emailEmission(source, address, frequency) };
    }
    case 'push':
      return { outcome: 'emitted', recipientId, ...pushEmission(source) };
  }
}

/** Over the throttle: the web inbox still shows it, folded; email and push stay quiet. */
function fold(channel: Channel, source: NotificationSource): ChannelDecision {
  const recipientId = source.recipient.userId;
  if (channel === 'web') return { outcome: 'folded', recipientId, ...webEmission(source, true) };
  return skipped(recipientId, channel, 'throttled');
}

function skipped(recipientId: string, channel: Channel, reason: DeliverySkipReason): ChannelDecision {
  return { outcome: 'skipped', channel, recipientId, reason };
}
