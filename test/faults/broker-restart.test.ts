/**
 * The eqiad broker of the local stack stopped for longer than the consumer's session timeout while
 * the consumer is held, then started again. KafkaJS then crashes the consumer and restarts it with a
 * fresh pause state; before the pause model re-applied holds on every group join, the restarted
 * consumer fetched, skipped and fetched again thousands of times a second, running prepareBatch
 * each time. Stops a broker: run it only against a stack of your own (make test does), never the
 * shared one.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel } from 'kafkajs';
import { Registry } from 'prom-client';
import { createProducer } from '../../libs/kafka/client.ts';
import {
  BROKERS,
  createStreamTopics,
  deleteDcTopics,
  eventually,
  stackCtl,
  testKafka,
  uniqueDc,
} from '../integration/harness.ts';
import { event, produceRaw, registryValue, startEventRuntime } from '../integration/runtime-fixture.ts';

const kafka = testKafka('eqiad');
const producer = createProducer(kafka);
const dc = uniqueDc();

before(async () => {
  await producer.connect();
  await createStreamTopics(kafka, dc, ['notify.event', 'notify.checkpoint'], 3);
});
after(async () => {
  await producer.disconnect();
  await deleteDcTopics(kafka, dc);
});

test('a held consumer stays held through a broker outage and consumer restart; nothing is lost', async (t) => {
  // Few client retries, so the consumer gives up and restarts within seconds rather than ~25 s.
  const fragile = new Kafka({
    clientId: `faults-${dc}`,
    brokers: [...BROKERS.eqiad],
    connectionTimeout: 1_000,
    retry: { retries: 2, initialRetryTime: 100 },
    logLevel: logLevel.NOTHING,
  });
  const registry = new Registry();
  const handled = new Map<string, number>();
  let prepared = 0;
  const runtime = await startEventRuntime(
    fragile,
    dc,
    {
      async prepareBatch() {
        prepared++;
      },
      handle(record) {
        handled.set(record.value.event_id, (handled.get(record.value.event_id) ?? 0) + 1);
      },
    },
    { registry, sessionTimeoutMs: 6_000, group: `held-${dc}` },
  );
  const ids = Array.from({ length: 30 }, (_, i) => `held${i}`);
  try {
    await produceRaw(producer, dc, [event(dc, 'warm')]);
    await eventually(() => (handled.has('warm') ? true : undefined), 'the first record');
    runtime.pause('send-budget');
    await produceRaw(
      producer,
      dc,
      ids.map((id) => event(dc, id)),
      (i) => `key${i}`,
    );

    await stackCtl('stop', 'eqiad');
    await eventually(
      () => (/crashed/.test(runtime.readiness().detail) ? true : undefined),
      'the consumer to crash',
      60_000,
    );
    await stackCtl('start', 'eqiad');
    await eventually(
      () => (runtime.readiness().ok ? true : undefined),
      'the consumer back in its group',
      90_000,
    );

    const preparedBefore = prepared;
    const fetchedBefore = await registryValue(registry, 'tidings_consumer_batches_total', {
      step: 'fetched',
    });
    await sleep(5_000);
    const fetched =
      (await registryValue(registry, 'tidings_consumer_batches_total', { step: 'fetched' })) - fetchedBefore;
    t.diagnostic(
      `while held after the restart: ${fetched} batches fetched, ${prepared - preparedBefore} prepared in 5 s`,
    );
    assert.equal(prepared - preparedBefore, 0, 'nothing is prepared while held');
    assert.ok(fetched <= 6, `${fetched} batches fetched in 5 s while held`);
    assert.deepEqual([...handled.keys()], ['warm'], 'the hold survived the restart');
    // Every assigned partition: the stream's three and its retry topics'.
    assert.equal(
      await registryValue(registry, 'tidings_consumer_pause_reasons', { reason: 'send-budget' }),
      9,
      'the hold shows as a pause reason',
    );

    runtime.resume('send-budget');
    await eventually(
      () => (ids.every((id) => handled.has(id)) ? true : undefined),
      'every held record',
      60_000,
    );
    for (const id of ids) assert.equal(handled.get(id), 1, `${id} handled once`);
  } finally {
    await stackCtl('start', 'eqiad');
    await runtime.stop();
  }
});
