import assert from 'node:assert/strict';
import { test } from 'node:test';
import { notificationId, recordId } from '../../services/router/notification-id.ts';

test('the notification id is stable for (event, recipient, channel) and differs when any of them does', () => {
  const id = notificationId('ev-1', 'u1', 'email');
  assert.match(id, /^[0-9a-f]{32}$/);
  assert.equal(notificationId('ev-1', 'u1', 'email'), id);
  const others = [
    notificationId('ev-2', 'u1', 'email'),
    notificationId('ev-1', 'u2', 'email'),
    notificationId('ev-1', 'u1', 'web'),
  ];
  assert.equal(new Set([id, ...others]).size, 4);
});

test('ids do not collide when a separator character moves between parts', () => {
  assert.notEqual(notificationId('a|b', 'c', 'web'), notificationId('a', 'b|c', 'web'));
  assert.notEqual(notificationId('a","b', 'c', 'web'), notificationId('a', 'b","c', 'web'));
});

test('the record id is a version-8 UUID derived from the notification id', () => {
  const id = recordId(notificationId('ev-1', 'u1', 'push'));
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(recordId(notificationId('ev-1', 'u1', 'push')), id);
  assert.notEqual(recordId(notificationId('ev-1', 'u1', 'web')), id);
});
