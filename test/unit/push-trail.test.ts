import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Notification } from '../../libs/schemas/types.generated.ts';
import type { DeviceReport, WindowOutcome } from '../../services/push/deliver-window.ts';
import { pushDecisions } from '../../services/push/push-trail.ts';

const notification = (id: string) =>
  ({ notification_id: id, event_id: `e-${id}`, recipient_id: 'ann' }) as Notification;
const devices = (report: Partial<DeviceReport>): DeviceReport => ({
  calls: [],
  pushed: 0,
  already: 0,
  dead: [],
  ...report,
});
const told = (id: string, outcome: WindowOutcome | 'kill-switch') =>
  pushDecisions(notification(id), outcome, 1_000).map((d) => [d.outcome, d.reason ?? null, d.ref ?? null]);

test('a push names its calls; dead devices come first, each with the provider code', () => {
  const outcome: WindowOutcome = {
    kind: 'delivered',
    carrier: 'n1',
    devices: devices({
      calls: ['c1', 'c2'],
      pushed: 2,
      dead: [{ tokenHash: 'abcdef0123456789', code: 'gone' }],
    }),
  };
  assert.deepEqual(told('n1', outcome), [
    ['token_dead', 'gone', 'abcdef012345'],
    ['pushed', null, 'c1 c2'],
  ]);
  assert.equal(pushDecisions(notification('n1'), outcome, 0)[1]?.detail, '2 devices');
});

test('no device at all is a drop; devices that all had it already tell nothing new', () => {
  assert.deepEqual(told('n1', { kind: 'delivered', carrier: 'n1', devices: devices({}) }), [
    ['dropped', 'no-devices', null],
  ]);
  assert.deepEqual(told('n1', { kind: 'delivered', carrier: 'n1', devices: devices({ already: 2 }) }), []);
});

test('a Retry-After holds the carrier until then; the others say which notification carries them', () => {
  const outcome: WindowOutcome = {
    kind: 'transient',
    code: 'rate',
    retryAfterMs: 5_000,
    carrier: 'n1',
    devices: devices({}),
  };
  const [held] = pushDecisions(notification('n1'), outcome, 1_000);
  assert.deepEqual([held?.outcome, held?.reason, held?.dueAt], ['held', 'retry-after', 6_000]);
  assert.deepEqual(told('n2', outcome), [['deferred', 'carried-by', 'n1']]);
  assert.deepEqual(told('n1', { ...outcome, retryAfterMs: null }), [
    ['deferred', 'provider-unavailable', null],
  ]);
});

test('the kill switch drops every notification with its reason', () => {
  assert.deepEqual(told('n1', 'kill-switch'), [['dropped', 'kill-switch', null]]);
});
