import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NotifyBounce } from '../../libs/schemas/types.generated.ts';
import { bounceDecisions } from '../../services/bounce/bounce-trail.ts';

const bounce = (kind: NotifyBounce['kind']) =>
  ({
    meta: { id: 'report-1' },
    kind,
    source: kind === 'complaint' ? 'smtp_arf' : 'smtp_dsn',
    status: '5.1.1',
    smtp_code: 550,
    diagnostic: 'user unknown',
  }) as NotifyBounce;
const sent = [
  { notificationId: 'n1', eventId: 'e1', recipientId: 'ann' },
  { notificationId: 'n2', eventId: 'e2', recipientId: 'ann' },
];
const told = (...args: Parameters<typeof bounceDecisions>) =>
  bounceDecisions(...args).map((d) => [d.notificationId, d.outcome, d.reason, d.ref]);

test('a hard bounce that suppresses is told on every notification the message carried', () => {
  const suppress = {
    type: 'suppress',
    suppression: { reason: 'hard_bounce', since: 0, until: null },
  } as const;
  assert.deepEqual(told(bounce('hard'), [suppress], sent), [
    ['n1', 'bounced', 'hard-bounce', 'report-1'],
    ['n1', 'suppressed', 'hard-bounce', 'report-1'],
    ['n2', 'bounced', 'hard-bounce', 'report-1'],
    ['n2', 'suppressed', 'hard-bounce', 'report-1'],
  ]);
  assert.equal(bounceDecisions(bounce('hard'), [suppress], sent)[0]?.detail, '5.1.1 550 user unknown');
});

test('a soft bounce below the threshold, or a redelivered report, tells only the bounce', () => {
  assert.deepEqual(told(bounce('soft'), [], sent.slice(0, 1)), [
    ['n1', 'bounced', 'soft-bounce', 'report-1'],
  ]);
});

test('a complaint is told as complained, by its source', () => {
  assert.deepEqual(told(bounce('complaint'), [{ type: 'disable-email' }], sent.slice(0, 1)), [
    ['n1', 'complained', 'smtp-arf', 'report-1'],
  ]);
});

test('a report about a message nobody knows tells nothing', () => {
  assert.deepEqual(told(bounce('hard'), [], []), []);
});
