import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_RETRY_DELAYS_MS } from '../../libs/kafka/retry-policy.ts';
import { checkTopics, MissingTopicsError } from '../../libs/kafka/topic-check.ts';
import { consumerWrites, serviceWrites } from '../../libs/kafka/topic-plan.ts';

const failure = (fn: () => void): MissingTopicsError => {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof MissingTopicsError, String(error));
    return error;
  }
  assert.fail('expected a MissingTopicsError');
};

test("a consumer writes its stream's local topic, the checkpoint topic, its retry topics and its DLQ", () => {
  assert.deepEqual(consumerWrites('eqiad', 'notify.event', 'rt', [300, 600]), [
    'eqiad.notify.event',
    'eqiad.notify.checkpoint',
    'eqiad.notify.event.rt.retry-300ms',
    'eqiad.notify.event.rt.retry-600ms',
    'eqiad.notify.event.rt.dlq',
  ]);
});

test('every topic present: no error', () => {
  const wanted = consumerWrites('eqiad', 'notify.event', 'rt', DEFAULT_RETRY_DELAYS_MS);
  checkTopics(new Set(wanted), wanted, { dc: 'eqiad', retryDelaysMs: DEFAULT_RETRY_DELAYS_MS });
});

test('one error names every missing topic and the command that creates them', () => {
  const wanted = serviceWrites('router', 'codfw', DEFAULT_RETRY_DELAYS_MS);
  const present = new Set(
    wanted.filter(
      (t) => t !== 'codfw.notify.event.router.held' && t !== 'codfw.notify.user.router.retry-10s',
    ),
  );
  const error = failure(() =>
    checkTopics(present, wanted, { dc: 'codfw', retryDelaysMs: DEFAULT_RETRY_DELAYS_MS }),
  );
  assert.deepEqual(error.missing, ['codfw.notify.user.router.retry-10s', 'codfw.notify.event.router.held']);
  assert.match(error.message, /codfw\.notify\.event\.router\.held/);
  assert.match(error.message, /codfw\.notify\.user\.router\.retry-10s/);
  assert.match(error.message, /tidings topics apply --dc codfw/);
  assert.doesNotMatch(error.message, /RETRY_DELAYS/);
});

test('retry delays other than the plan’s: the error says they must be declared', () => {
  const wanted = consumerWrites('eqiad', 'notify.event', 'router', [5_000]);
  const error = failure(() =>
    checkTopics(new Set(['eqiad.notify.event', 'eqiad.notify.checkpoint']), wanted, {
      dc: 'eqiad',
      retryDelaysMs: [5_000],
    }),
  );
  assert.deepEqual(error.missing, ['eqiad.notify.event.router.retry-5s', 'eqiad.notify.event.router.dlq']);
  assert.match(error.message, /RETRY_DELAYS is 5s, not the plan's 1s,10s,1m/);
  assert.match(error.message, /declare these there and apply again/);
  assert.match(error.message, /DEFAULT_RETRY_DELAYS_MS, libs\/kafka\/retry-policy\.ts/);
});
