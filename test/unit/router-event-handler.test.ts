/**
 * The notify.event handler's wiring with an in-memory store: what it emits where, what it records
 * once the batch is durable, and the push kill switch.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Registry } from 'prom-client';
import type { ConsumedRecord, HandlerContext } from '../../libs/kafka/consumer-runtime.ts';
import type { Meta, NotifyEvent } from '../../libs/schemas/types.generated.ts';
import { eventHandler } from '../../services/router/event-handler.ts';
import { createRoutingMetrics } from '../../services/router/routing-metrics.ts';
import type { BatchOutcome, RouterStore } from '../../services/router/store.ts';
import { anEvent, aRecipient, DAY, NOW, registry } from './router-fixtures.ts';

function fakeStore(processed: string[] = []) {
  const recorded: BatchOutcome[] = [];
  const store: RouterStore = {
    processedAmong: async (ids) => ids.filter((id) => processed.includes(id)),
    loadBatch: async ({ recipientIds }) => ({
      recipients: new Map(recipientIds.map((id) => [id, aRecipient({ userId: id })])),
      throttleCounts: [],
      typeVolumes: [],
    }),
    recordBatch: async (outcome) => {
      recorded.push(outcome);
    },
    upsertUser: async () => undefined,
    eraseUser: async () => undefined,
    applyPreferenceChange: async () => undefined,
  };
  return { store, recorded };
}

function asRecord(event: NotifyEvent): ConsumedRecord<NotifyEvent> {
  return {
    topic: 'eqiad.notify.event',
    partition: 0,
    offset: '0',
    key: event.event_id,
    timestamp: NOW,
    headers: {},
    stream: 'notify.event',
    originDc: 'eqiad',
    value: event,
    attempt: 0,
  };
}

function handlerWith(store: RouterStore, pushEnabled = true) {
  const metricsRegistry = new Registry();
  const handler = eventHandler({
    store,
    registry,
    policy: { sunsetAfterMs: 45 * DAY },
    cap: { max: 1_000, windowMs: 3_600_000 },
    origin: { dc: 'eqiad', producer: 'router' },
    holdTopic: 'eqiad.notify.event.router.held',
    pushEnabled,
    metrics: createRoutingMetrics(metricsRegistry),
    onChattyTrip: () => undefined,
    now: () => NOW,
  });
  return { handler, metricsRegistry };
}

async function run(handler: ReturnType<typeof handlerWith>['handler'], events: NotifyEvent[]) {
  const records = events.map(asRecord);
  const batch = await handler.prepareBatch!(records);
  const emitted: { stream: string; key: string | null | undefined; topic?: string }[] = [];
  for (const record of records) {
    const ctx: HandlerContext<typeof batch> = {
      batch,
      emit: (stream, _value, options) => emitted.push({ stream, key: options?.key, topic: options?.topic }),
      derivedMeta: () => ({}) as Meta,
      hold: () => undefined,
    };
    await handler.handle(record, ctx);
  }
  return { records, batch, emitted };
}

describe('router event handler', () => {
  test('emits one record per recipient and channel, keyed by recipient', async () => {
    const { handler } = handlerWith(fakeStore().store);
    const { emitted } = await run(handler, [anEvent({ recipients: ['u1', 'u2'] })]);
    assert.deepEqual(emitted.map((e) => `${e.stream} ${e.key}`).sort(), [
      'notify.email u1',
      'notify.email u2',
      'notify.push u1',
      'notify.push u2',
      'notify.web u1',
      'notify.web u2',
    ]);
  });

  test('with push disabled nothing goes to notify.push and the skip is counted', async () => {
    const { handler, metricsRegistry } = handlerWith(fakeStore().store, false);
    const { emitted } = await run(handler, [anEvent()]);
    assert.deepEqual(emitted.map((e) => e.stream).sort(), ['notify.email', 'notify.web']);
    assert.match(
      await metricsRegistry.metrics(),
      /tidings_router_deliveries_total\{channel="push",outcome="skipped",reason="push-disabled"\} 1/,
    );
  });

  test('afterDurable records as processed only the events given to it as durable', async () => {
    const { store, recorded } = fakeStore();
    const { handler } = handlerWith(store);
    const { records, batch } = await run(handler, [anEvent({ event_id: 'a' }), anEvent({ event_id: 'b' })]);
    await handler.afterDurable!([records[1]!], batch);
    assert.deepEqual(
      recorded.map((r) => r.processed),
      [['b']],
    );
  });

  test('an event already processed emits nothing', async () => {
    const { handler } = handlerWith(fakeStore(['ev-1']).store);
    const { emitted } = await run(handler, [anEvent()]);
    assert.deepEqual(emitted, []);
  });

  test('an event over the chatty cap goes, unchanged in key, to the hold topic', async () => {
    const { handler } = handlerWith(fakeStore().store);
    const crowd = Array.from({ length: 1_001 }, (_, i) => `u${i}`);
    const { emitted } = await run(handler, [anEvent({ recipients: crowd })]);
    assert.deepEqual(emitted, [
      { stream: 'notify.event', key: 'ev-1', topic: 'eqiad.notify.event.router.held' },
    ]);
  });
});
