/** How notifications group into entries and sections, the same in every datacenter. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Notification } from '../../libs/schemas/types.generated.ts';
import { entryIdOf, sectionOf } from '../../services/inbox/store.ts';

const HOUR = 3_600_000;
const base: Notification = {
  notification_id: 'n1',
  event_id: 'e1',
  event_type: 'thank-you-edit',
  category: 'thank-you-edit',
  recipient_id: 'u1',
  agent: null,
  title: '',
  url: '',
  extra: {},
  priority: 4,
  bundle_key: 'thanks',
  locale: 'en',
  timezone: 'UTC',
};

test('one bundle key in one window is one entry whatever the arrival order; the next window starts another', () => {
  const at = (eventMs: number, id: string) =>
    entryIdOf({ notification: { ...base, notification_id: id }, eventMs, folded: false }, HOUR);
  const t = 10 * HOUR;
  assert.equal(at(t + 1, 'a'), at(t + HOUR - 1, 'b'));
  assert.notEqual(at(t + HOUR - 1, 'b'), at(t + HOUR, 'c'));
});

test('no bundle key: an entry of its own; folded: one summary per category and window', () => {
  const single = (id: string) =>
    entryIdOf(
      { notification: { ...base, notification_id: id, bundle_key: null }, eventMs: 5, folded: false },
      HOUR,
    );
  assert.notEqual(single('a'), single('b'));
  const folded = (category: string) =>
    entryIdOf({ notification: { ...base, category }, eventMs: 5, folded: true }, HOUR);
  assert.equal(folded('reverted'), 'folded:reverted:0');
  assert.notEqual(folded('reverted'), folded('mention'));
});

test('alerts are the categories at or above the configured priority, the rest notices', () => {
  assert.equal(sectionOf(1, { alertMaxPriority: 2 }), 'alert');
  assert.equal(sectionOf(2, { alertMaxPriority: 2 }), 'alert');
  assert.equal(sectionOf(3, { alertMaxPriority: 2 }), 'notice');
});
