import assert from 'node:assert/strict';
import { test } from 'node:test';
import { batchKeys } from '../../services/router/prefetch.ts';
import { anEvent, HOUR, NOW, registry } from './router-fixtures.ts';

test('a batch needs each event id, recipient, throttle key and type window loaded once', () => {
  const at = (dt: number) => ({ ...anEvent().meta, dt });
  const events = [
    anEvent({ event_id: 'e1', recipients: ['u1', 'u2'] }),
    anEvent({
      event_id: 'e2',
      category: 'mention',
      type: 'mention',
      recipients: ['u2', 'u3', 'u2'],
      meta: at(NOW),
    }),
    anEvent({ event_id: 'e3', category: 'mention', type: 'mention', recipients: ['u3'], meta: at(NOW + 1) }),
    anEvent({ event_id: 'e1', category: 'no-such-category', recipients: ['u4'] }),
  ];
  const keys = batchKeys(events, registry, { max: 100, windowMs: HOUR });
  const hour = Math.floor(NOW / HOUR) * HOUR;

  assert.deepEqual(keys.eventIds, ['e1', 'e2', 'e3']);
  assert.deepEqual(keys.recipientIds, ['u1', 'u2', 'u3', 'u4']);
  assert.deepEqual(keys.throttleKeys, [
    { recipientId: 'u2', category: 'mention', windowStart: hour },
    { recipientId: 'u3', category: 'mention', windowStart: hour },
  ]);
  assert.deepEqual(keys.typeVolumeKeys, [
    { type: 'edit-user-talk', windowStart: Math.floor((NOW - 5_000) / HOUR) * HOUR },
    { type: 'mention', windowStart: hour },
  ]);
});
