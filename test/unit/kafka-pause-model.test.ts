/**
 * The pause model against KafkaJS's own SubscriptionState (the object consumer.pause/resume write
 * to), so what is asserted is what KafkaJS would fetch.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { type TestContext, test } from 'node:test';
import type { TopicPartitions } from 'kafkajs';
import pino from 'pino';
import { createPauseModel, PARTITION_DUE_REASON } from '../../libs/kafka/pause-model.ts';

interface SubscriptionState {
  pause(topics: TopicPartitions[]): void;
  resume(topics: TopicPartitions[]): void;
  isPaused(topic: string, partition: number): boolean;
}
const SubscriptionState = createRequire(import.meta.url)(
  'kafkajs/src/consumer/subscriptionState.js',
) as new () => SubscriptionState;

const ASSIGNMENT = { 'd.notify.push': [0, 1, 2], 'd.notify.push.push.retry-1s': [0, 1, 2] };
const RETRY = 'd.notify.push.push.retry-1s';

/**
 * Moves a mocked clock on by `ms`, a millisecond at a time, letting timers and the promises they
 * settle run: timed tests that do not depend on how busy the machine is.
 */
async function advance(t: TestContext, ms: number): Promise<void> {
  for (let i = 0; i < ms; i++) {
    t.mock.timers.tick(1);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** A clock of the test's own: setTimeout and Date.now, from 0. */
const mockClock = (t: TestContext) => t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });

function model(probeIntervalMs = 10) {
  // A holder, as a consumer restart swaps KafkaJS's state for a fresh one.
  const kafkajs = { state: new SubscriptionState() };
  const pauses = createPauseModel({
    target: {
      pause: (t) => kafkajs.state.pause(t),
      resume: (t) => kafkajs.state.resume(t),
    },
    log: pino({ level: 'silent' }),
    probeIntervalMs,
  });
  const fetched = () =>
    Object.entries(ASSIGNMENT).flatMap(([topic, partitions]) =>
      partitions.filter((p) => !kafkajs.state.isPaused(topic, p)).map((p) => `${topic}|${p}`),
    );
  return { pauses, kafkajs, fetched };
}

test('a retry partition whose due time passes during a service-wide hold stays paused', async (t) => {
  mockClock(t);
  const { pauses, fetched } = model();
  pauses.assigned(ASSIGNMENT);
  pauses.holdPartition(RETRY, 1, Date.now() + 20);
  pauses.hold('retry-after', { until: Date.now() + 80 });
  assert.deepEqual(fetched(), []);
  await advance(t, 40);
  assert.deepEqual(fetched(), [], 'the due time passed but the service-wide hold still holds');
  await advance(t, 80);
  assert.equal(fetched().length, 6);
  pauses.close();
});

test('one partition pausing or resuming leaves the other partitions of its topic as they were', async (t) => {
  mockClock(t);
  const { pauses, fetched } = model();
  pauses.assigned(ASSIGNMENT);
  pauses.holdPartition(RETRY, 0, Date.now() + 30);
  pauses.holdPartition(RETRY, 2, Date.now() + 200);
  assert.deepEqual(
    fetched().filter((t) => t.startsWith(RETRY)),
    [`${RETRY}|1`],
  );
  await advance(t, 60);
  assert.deepEqual(
    fetched().filter((t) => t.startsWith(RETRY)),
    [`${RETRY}|0`, `${RETRY}|1`],
  );
  assert.equal(pauses.reasons().get(PARTITION_DUE_REASON), 1);
  pauses.close();
});

test('a group join after a consumer restart re-applies every hold to the fresh KafkaJS state', () => {
  const { pauses, kafkajs, fetched } = model();
  pauses.assigned(ASSIGNMENT);
  pauses.hold('send-budget', { until: Date.now() + 60_000 });
  assert.deepEqual(fetched(), []);
  // What KafkaJS does on a crash with restart: a new consumer group with nothing paused.
  pauses.unassigned();
  kafkajs.state = new SubscriptionState();
  assert.equal(fetched().length, 6);
  pauses.assigned(ASSIGNMENT);
  assert.deepEqual(fetched(), []);
  assert.equal(pauses.isHeld('d.notify.push', 0), true);
  pauses.close();
});

test('a reason holds once however often it is met, and a later time extends it', async (t) => {
  mockClock(t);
  const { pauses, fetched } = model();
  pauses.assigned(ASSIGNMENT);
  pauses.hold('send-budget', { until: Date.now() + 30 });
  pauses.hold('send-budget', { until: Date.now() + 10 });
  pauses.hold('send-budget', { until: Date.now() + 70 });
  await advance(t, 45);
  assert.deepEqual(fetched(), [], 'extended to the later time');
  await advance(t, 60);
  assert.equal(fetched().length, 6);
  assert.equal(pauses.isHalted(), false);
  pauses.close();
});

test('a probe runs each interval until it succeeds, then consumption resumes', async (t) => {
  mockClock(t);
  const { pauses, fetched } = model();
  pauses.assigned(ASSIGNMENT);
  let probes = 0;
  const probe = async () => ++probes >= 3;
  pauses.hold('smtp-misconfigured', { probe });
  pauses.hold('smtp-misconfigured', { probe });
  assert.deepEqual(fetched(), []);
  await advance(t, 120);
  assert.equal(probes, 3);
  assert.equal(fetched().length, 6);
  pauses.close();
});

test('holds compose: releasing one reason keeps the others', () => {
  const { pauses, fetched } = model();
  pauses.assigned(ASSIGNMENT);
  pauses.hold('backpressure');
  pauses.hold('dlq-breaker', { until: Date.now() + 60_000 });
  pauses.release('backpressure');
  assert.deepEqual(fetched(), []);
  assert.deepEqual([...pauses.reasons().keys()], ['dlq-breaker']);
  pauses.release('dlq-breaker');
  assert.equal(fetched().length, 6);
  pauses.close();
});
