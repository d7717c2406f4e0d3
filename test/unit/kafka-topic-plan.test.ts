import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createRetryPolicy, DEFAULT_RETRY_DELAYS_MS } from '../../libs/kafka/retry-policy.ts';
import {
  CONSUMERS,
  declaredPartitions,
  desiredTopics,
  type ExistingTopic,
  holdTopicOf,
  isCompacted,
  LOCAL_MAX_PARTITIONS,
  localPartitions,
  ownedTopics,
  plannedGroup,
  plannedGroupTopics,
  planTopic,
  rawSmtpDeadLetterTopic,
  serviceWrites,
  TOPIC_PLAN,
} from '../../libs/kafka/topic-plan.ts';
import { STREAMS } from '../../libs/schemas/catalog.ts';

describe('topic plan', () => {
  test('declares every stream once', () => {
    assert.deepEqual(TOPIC_PLAN.map((d) => d.stream).sort(), [...STREAMS].sort());
  });

  test('compacts exactly the state streams', () => {
    assert.deepEqual(STREAMS.filter(isCompacted), [
      'notify.user',
      'notify.push-subscription',
      'notify.suppression',
      'notify.checkpoint',
      'notify.erasure',
    ]);
  });

  test('a cluster holds every datacenter prefix of every stream', () => {
    const topics = desiredTopics(['eqiad', 'codfw'], 1).map((t) => t.topic);
    assert.equal(topics.length, 2 * STREAMS.length);
    assert.ok(topics.includes('eqiad.notify.event'));
    assert.ok(topics.includes('codfw.notify.checkpoint'));
  });

  test('the local stack caps partitions; production gets the declared counts', () => {
    const local = desiredTopics(['eqiad'], 1, TOPIC_PLAN, LOCAL_MAX_PARTITIONS);
    const production = desiredTopics(['eqiad'], 3);
    for (const d of TOPIC_PLAN) {
      const topic = `eqiad.${d.stream}`;
      assert.equal(production.find((t) => t.topic === topic)?.partitions, d.partitions);
      assert.equal(
        local.find((t) => t.topic === topic)?.partitions,
        Math.min(d.partitions, LOCAL_MAX_PARTITIONS),
      );
      assert.equal(localPartitions(d.stream), Math.min(d.partitions, LOCAL_MAX_PARTITIONS));
    }
  });

  test('with three replicas an acknowledged write needs two of them', () => {
    assert.equal(desiredTopics(['eqiad'], 3)[0]!.config['min.insync.replicas'], '2');
    assert.equal(desiredTopics(['eqiad'], 1)[0]!.config['min.insync.replicas'], '1');
  });
});

describe('planTopic', () => {
  const desired = desiredTopics(['eqiad'], 1).find((t) => t.topic === 'eqiad.notify.user')!;
  const matching = (): ExistingTopic => ({
    partitions: desired.partitions,
    replicationFactor: 1,
    config: { ...desired.config, 'segment.ms': '604800000' },
    overrides: {},
  });

  test('a missing topic is created', () => {
    assert.equal(planTopic(desired, undefined).action, 'create');
  });

  test('a matching topic is ok', () => {
    assert.deepEqual(planTopic(desired, matching()), {
      topic: 'eqiad.notify.user',
      action: 'ok',
      changes: [],
      warnings: [],
    });
  });

  test('a differing config is altered, naming old and new values', () => {
    const existing = matching();
    existing.config['cleanup.policy'] = 'delete';
    assert.deepEqual(planTopic(desired, existing).changes, ['cleanup.policy: delete -> compact']);
    assert.equal(planTopic(desired, existing).action, 'alter');
  });

  test('a partition count that differs is reported, never changed', () => {
    const existing = { ...matching(), partitions: 1 };
    const change = planTopic(desired, existing);
    assert.equal(change.action, 'ok');
    assert.match(change.warnings[0]!, new RegExp(`has 1 partitions, declared ${desired.partitions}:`));
  });
});

describe('topics services own', () => {
  const owned = ownedTopics(['eqiad'], 1);
  const named = (topic: string) => owned.find((t) => t.topic === topic);

  test('every consumer has a retry topic per default delay and a DLQ, with its stream’s partitions', () => {
    for (const { service, stream } of CONSUMERS) {
      const policy = createRetryPolicy({ dc: 'eqiad', stream, service, delaysMs: DEFAULT_RETRY_DELAYS_MS });
      for (const topic of [...policy.retryTopics, policy.deadLetterTopic]) {
        assert.equal(
          named(topic)?.partitions,
          TOPIC_PLAN.find((d) => d.stream === stream)!.partitions,
          `${topic} declared`,
        );
      }
    }
    assert.equal(named('eqiad.notify.push.push.retry-10s')?.config['retention.ms'], String(7 * 86_400_000));
    assert.equal(named('eqiad.notify.push.push.dlq')?.config['retention.ms'], String(30 * 86_400_000));
  });

  test("the router's hold topic and bounce's raw SMTP dead letters are declared", () => {
    assert.equal(named(holdTopicOf('eqiad'))?.partitions, declaredPartitions('notify.event'));
    assert.equal(named('eqiad.notify.event.router.held')?.stream, 'notify.event');
    assert.equal(named(rawSmtpDeadLetterTopic('eqiad'))?.partitions, 1);
    assert.equal(named('eqiad.notify.bounce.bounce-smtp.dlq')?.stream, 'notify.bounce');
  });

  test("narrowed to services, only theirs: a test datacenter's router gets no bounce topics", () => {
    const router = ownedTopics(['t1'], 1, { services: ['router'], retryDelaysMs: [200] }).map((t) => t.topic);
    assert.ok(router.includes('t1.notify.event.router.retry-200ms'));
    assert.ok(router.includes('t1.notify.event.router.held'));
    assert.ok(!router.some((t) => t.includes('.bounce')));
    assert.deepEqual(
      router.filter((t) => !t.endsWith('.held')).sort(),
      CONSUMERS.filter((c) => c.service === 'router')
        .flatMap((c) => [`t1.${c.stream}.router.retry-200ms`, `t1.${c.stream}.router.dlq`])
        .sort(),
    );
  });

  test('what a service writes by the plan is all the plan creates for it', () => {
    const creates = new Set([
      ...desiredTopics(['eqiad', 'codfw'], 1).map((t) => t.topic),
      ...ownedTopics(['eqiad', 'codfw'], 1).map((t) => t.topic),
    ]);
    for (const service of new Set(CONSUMERS.map((c) => c.service))) {
      const writes = serviceWrites(service, 'eqiad', DEFAULT_RETRY_DELAYS_MS);
      for (const topic of writes) assert.ok(creates.has(topic), `${service} writes ${topic}: planned`);
    }
    const router = serviceWrites('router', 'eqiad', DEFAULT_RETRY_DELAYS_MS);
    assert.ok(router.includes('eqiad.notify.event.router.held'));
    assert.ok(router.includes('eqiad.notify.checkpoint'));
    assert.ok(router.includes('eqiad.notify.erasure.router.dlq'));
    assert.ok(serviceWrites('bounce', 'eqiad', [1_000]).includes('eqiad.notify.bounce.bounce-smtp.dlq'));
    assert.deepEqual(serviceWrites('relay', 'eqiad', [1_000]), []);
  });
});

describe('consumer groups', () => {
  test('every planned consumer has a group of its own, which failover moves on what the runtime reads', () => {
    assert.equal(new Set(CONSUMERS.map((c) => c.group)).size, CONSUMERS.length);
    assert.equal(plannedGroup('router', 'notify.user'), 'router-users');
    assert.equal(plannedGroup('router', 'notify.bounce'), undefined);
    assert.deepEqual(plannedGroupTopics('router-users', ['eqiad', 'codfw'], [1_000]), [
      'eqiad.notify.user',
      'eqiad.notify.user.router.retry-1s',
      'codfw.notify.user',
      'codfw.notify.user.router.retry-1s',
    ]);
    assert.equal(plannedGroupTopics('fo-test', ['eqiad']), undefined);
  });
});
