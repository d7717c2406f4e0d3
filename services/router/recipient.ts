/**
 * A person as the router knows them (materialized from notify.user, with notify.preference-change
 * on top) and what they want.
 *
 * Precedence of a person's choices for one category on one channel:
 *   1. a channel the category marks "always" is on, whatever the person chose;
 *   2. email frequency "never" turns every email off that the person may turn off;
 *   3. the latest preference change naming this category or the whole channel;
 *   4. the notify.user preference for this category and channel;
 *   5. the category's default ("on" or "off").
 * A notify.user record never undoes a preference change: upstream apps that do not consume
 * notify.preference-change would otherwise re-subscribe everyone who unsubscribed in one click
 * the next time they republish the user. Re-enabling goes through another preference change.
 */
import type { Agent, Channel, EmailFrequency, Preference } from '../../libs/schemas/types.generated.ts';
import type { Category } from './categories.ts';

export interface PreferenceChange {
  /** null: every category on the channel. */
  readonly category: string | null;
  readonly channel: Channel;
  readonly enabled: boolean;
  /** meta.dt of the notify.preference-change record; the latest applicable change wins. */
  readonly changedAt: number;
}

export interface Recipient {
  readonly userId: string;
  /** Confirmed address, or null: no email. */
  readonly email: string | null;
  readonly locale: string;
  readonly timezone: string;
  /** ms since the epoch; null when unknown. */
  readonly lastActive: number | null;
  /** From notify.user. */
  readonly emailFrequency: EmailFrequency;
  /** From notify.user: the complete set of that record. */
  readonly preferences: readonly Preference[];
  readonly mutedAgents: readonly string[];
  /** From notify.preference-change: the latest change per (channel, category or whole channel). */
  readonly preferenceChanges: readonly PreferenceChange[];
  /** The latest email frequency set by a notify.preference-change, if any. */
  readonly emailFrequencyChange: EmailFrequency | null;
}

export function emailFrequencyOf(recipient: Recipient): EmailFrequency {
  return recipient.emailFrequencyChange ?? recipient.emailFrequency;
}

/** On a tie in time, "off" wins: less mail than asked for rather than mail after an unsubscribe. */
function isLater(a: PreferenceChange, b: PreferenceChange): boolean {
  return a.changedAt > b.changedAt || (a.changedAt === b.changedAt && !a.enabled);
}

function latestChange(
  recipient: Recipient,
  category: string,
  channel: Channel,
): PreferenceChange | undefined {
  let latest: PreferenceChange | undefined;
  for (const change of recipient.preferenceChanges) {
    if (change.channel !== channel || (change.category !== null && change.category !== category)) continue;
    if (!latest || isLater(change, latest)) latest = change;
  }
  return latest;
}

function recordedPreference(recipient: Recipient, category: string, channel: Channel): boolean | undefined {
  return recipient.preferences.find((p) => p.category === category && p.channel === channel)?.enabled;
}

/** Whether the person gets `category` on `channel` at all (before sunset, throttles and addresses). */
export function wantsChannel(recipient: Recipient, category: Category, channel: Channel): boolean {
  const mode = category.channels.get(channel);
  if (mode === undefined) return false;
  if (mode === 'always') return true;
  if (channel === 'email' && emailFrequencyOf(recipient) === 'never') return false;
  return (
    latestChange(recipient, category.name, channel)?.enabled ??
    recordedPreference(recipient, category.name, channel) ??
    mode === 'on'
  );
}

export function hasMuted(recipient: Recipient, agent: Agent | null): boolean {
  return agent !== null && recipient.mutedAgents.includes(agent.id);
}

/**
 * Inactive longer than the sunset period. An unknown last-active time is not inactivity: a missing
 * field upstream must not silently stop all email.
 */
export function isSunset(recipient: Recipient, now: number, sunsetAfterMs: number): boolean {
  return recipient.lastActive !== null && now - recipient.lastActive > sunsetAfterMs;
}
