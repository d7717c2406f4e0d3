import assert from 'node:assert/strict';
import { test } from 'node:test';
import { emailFrequencyOf, hasMuted, isSunset, wantsChannel } from '../../services/router/recipient.ts';
import { aRecipient, categoryNamed, DAY, HOUR, NOW } from './router-fixtures.ts';

const talk = categoryNamed('edit-user-talk');
const thanks = categoryNamed('thank-you-edit');
const reset = categoryNamed('password-reset');

test('without choices, the category’s defaults decide; channels it lacks are never used', () => {
  const person = aRecipient();
  assert.equal(wantsChannel(person, thanks, 'web'), true);
  assert.equal(wantsChannel(person, thanks, 'email'), false);
  assert.equal(wantsChannel(person, reset, 'web'), false);
});

test('an "always" channel ignores the person’s choices, even email frequency "never"', () => {
  const person = aRecipient({
    emailFrequency: 'never',
    preferences: [{ category: 'edit-user-talk', channel: 'web', enabled: false }],
    preferenceChanges: [{ category: null, channel: 'web', enabled: false, changedAt: NOW }],
  });
  assert.equal(wantsChannel(person, talk, 'web'), true);
  assert.equal(wantsChannel(person, reset, 'email'), true);
  assert.equal(wantsChannel(person, talk, 'email'), false);
});

test('a preference change wins over the notify.user preference, whatever their times', () => {
  const person = aRecipient({
    preferences: [{ category: 'thank-you-edit', channel: 'email', enabled: true }],
    preferenceChanges: [{ category: 'thank-you-edit', channel: 'email', enabled: false, changedAt: 0 }],
  });
  assert.equal(wantsChannel(person, thanks, 'email'), false);
});

test('between a category change and a whole-channel change, the later one wins', () => {
  const unsubscribeAll = { category: null, channel: 'email' as const, enabled: false, changedAt: NOW - HOUR };
  const resubscribe = {
    category: 'edit-user-talk',
    channel: 'email' as const,
    enabled: true,
    changedAt: NOW,
  };
  assert.equal(
    wantsChannel(aRecipient({ preferenceChanges: [unsubscribeAll, resubscribe] }), talk, 'email'),
    true,
  );
  const later = { ...unsubscribeAll, changedAt: NOW + HOUR };
  assert.equal(wantsChannel(aRecipient({ preferenceChanges: [resubscribe, later] }), talk, 'email'), false);
});

test('changes at the same instant resolve to off, in any order', () => {
  const on = { category: 'edit-user-talk', channel: 'push' as const, enabled: true, changedAt: NOW };
  const off = { category: null, channel: 'push' as const, enabled: false, changedAt: NOW };
  assert.equal(wantsChannel(aRecipient({ preferenceChanges: [on, off] }), talk, 'push'), false);
  assert.equal(wantsChannel(aRecipient({ preferenceChanges: [off, on] }), talk, 'push'), false);
});

test('changes to other categories or channels do not apply', () => {
  const person = aRecipient({
    preferenceChanges: [
      { category: 'mention', channel: 'email', enabled: false, changedAt: NOW },
      { category: null, channel: 'push', enabled: false, changedAt: NOW },
    ],
  });
  assert.equal(wantsChannel(person, talk, 'email'), true);
});

test('a frequency set by a preference change replaces the notify.user one', () => {
  assert.equal(emailFrequencyOf(aRecipient({ emailFrequency: 'daily' })), 'daily');
  assert.equal(
    emailFrequencyOf(aRecipient({ emailFrequency: 'daily', emailFrequencyChange: 'weekly' })),
    'weekly',
  );
});

test('mutes apply to the agent’s id only', () => {
  const person = aRecipient({ mutedAgents: ['troll'] });
  assert.equal(hasMuted(person, { id: 'troll', name: 'T' }), true);
  assert.equal(hasMuted(person, { id: 'friend', name: 'troll' }), false);
  assert.equal(hasMuted(person, null), false);
});

test('sunset counts from the last activity; unknown activity is not inactivity', () => {
  const period = 45 * DAY;
  assert.equal(isSunset(aRecipient({ lastActive: NOW - period }), NOW, period), false);
  assert.equal(isSunset(aRecipient({ lastActive: NOW - period - 1 }), NOW, period), true);
  assert.equal(isSunset(aRecipient({ lastActive: null }), NOW, period), false);
});
