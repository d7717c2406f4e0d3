import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createDlqBreaker } from '../../libs/kafka/dlq-breaker.ts';
import { errorHeaderText } from '../../libs/kafka/record-headers.ts';
import { createRetryPolicy } from '../../libs/kafka/retry-policy.ts';
import { formatDelay, parseTopic, retryTopic, topicFor, topicsAcrossDcs } from '../../libs/kafka/topics.ts';

test('topic names carry the datacenter prefix', () => {
  assert.equal(topicFor('eqiad', 'notify.event'), 'eqiad.notify.event');
  assert.deepEqual(topicsAcrossDcs(['eqiad', 'codfw'], 'notify.web'), [
    'eqiad.notify.web',
    'codfw.notify.web',
  ]);
  assert.deepEqual(parseTopic('codfw.notify.email-send'), { dc: 'codfw', stream: 'notify.email-send' });
  assert.throws(() => topicFor('EQ IAD', 'notify.event'), /must match/);
  assert.equal(retryTopic('eqiad', 'notify.email', 'email', 30_000), 'eqiad.notify.email.email.retry-30s');
  assert.deepEqual([500, 5000, 120_000, 3_600_000].map(formatDelay), ['500ms', '5s', '2m', '1h']);
});

test('failures walk the retry topics in order, then reach the DLQ', () => {
  const policy = createRetryPolicy({
    dc: 'eqiad',
    stream: 'notify.event',
    service: 'router',
    delaysMs: [1000, 5000],
  });
  assert.deepEqual(policy.route(1, 100), {
    kind: 'retry',
    topic: 'eqiad.notify.event.router.retry-1s',
    attempt: 1,
    dueAt: 1100,
    delayMs: 1000,
  });
  assert.equal(policy.route(2, 100).topic, 'eqiad.notify.event.router.retry-5s');
  assert.deepEqual(policy.route(3, 100), {
    kind: 'dead-letter',
    topic: 'eqiad.notify.event.router.dlq',
    attempt: 3,
  });
  assert.deepEqual(policy.retryTopicsAcrossDcs(['eqiad', 'codfw']), [
    'eqiad.notify.event.router.retry-1s',
    'eqiad.notify.event.router.retry-5s',
    'codfw.notify.event.router.retry-1s',
    'codfw.notify.event.router.retry-5s',
  ]);
});

test('the DLQ breaker opens at the threshold within the window and closes after the cool-down', () => {
  const breaker = createDlqBreaker({ threshold: 3, windowMs: 1000, cooldownMs: 5000 });
  assert.equal(breaker.record(0), false);
  assert.equal(breaker.record(700), false);
  assert.equal(breaker.record(1600), false, 'the first dead letter left the window');
  assert.equal(breaker.record(1650), true, 'three within one second');
  assert.equal(breaker.isOpen(2000), true);
  assert.equal(breaker.reopensAt(), 6650);
  assert.equal(breaker.isOpen(6650), false);
  assert.equal(
    createDlqBreaker({ threshold: 0, windowMs: 1, cooldownMs: 1 }).record(0),
    false,
    '0 disables it',
  );
});

test('error headers are one bounded line', () => {
  const text = errorHeaderText(new Error(`bad\r\nX-Injected: yes\n${'x'.repeat(5000)}`));
  assert.doesNotMatch(text, /[\r\n]/);
  assert.ok(text.length <= 1000);
  assert.match(text, /^Error: bad X-Injected: yes x+…$/);
});
