/**
 * The notify.event handler's wiring with an in-memory store: what it emits where, what it records
 * once the batch is durable, the router's push switch, and what it tells the delivery trail.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Registry } from 'prom-client';
import type { ConsumedRecord, HandlerContext } from '../../libs/kafka/consumer-runtime.ts';
import type { Meta, NotifyEvent, NotifyStatusInput } from '../../libs/schemas/types.generated.ts';
import { createTrail } from '../../libs/trail/trail.ts';
import { eventHandler } from '../../services/router/event-handler.ts';
import { notificationId } from '../../services/router/notification-id.ts';
import { createRoutingMetrics } from '../../services/router/routing-metrics.ts';
import type { BatchOutcome, RouterStore } from '../../services/router/store.ts';
import { anEvent, aRecipient, DAY, NOW, registry } from './router-fixtures.ts';

function fakeStore(processed: string[] = []) {
  const recorded: BatchOutcome[] = [];
  const store: RouterStore = {
    loadBatch: async ({ eventIds, recipientIds }) => ({
      processed: eventIds.filter((id) => processed.includes(id)),
      recipients: new Map(recipientIds.map((id) => [id, aRecipient({ userId: id })])),
      throttleCounts: [],
      typeVolumes: [],
    }),
    recordBatch: async (outcome) => {
      recorded.push(outcome);
    },
    applyUsers: async () => undefined,
    eraseUser: async () => undefined,
    applyPreferenceChange: async () => undefined,
    prune: async () => 0,
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

function handlerWith(store: RouterStore, { emitPush = true, trail = true, cap = 1_000 } = {}) {
  const metricsRegistry = new Registry();
  const handler = eventHandler({
    store,
    registry,
    policy: { sunsetAfterMs: 45 * DAY, emitPush },
    cap: { max: cap, windowMs: 3_600_000 },
    origin: { dc: 'eqiad', producer: 'router' },
    holdTopic: 'eqiad.notify.event.router.held',
    trail: createTrail({ stage: 'router', enabled: trail, now: () => NOW }),
    metrics: createRoutingMetrics(metricsRegistry),
    onChattyTrip: () => undefined,
    now: () => NOW,
  });
  return { handler, metricsRegistry };
}

type Handler = ReturnType<typeof handlerWith>['handler'];
type Batch = Awaited<ReturnType<NonNullable<Handler['prepareBatch']>>>;

async function run(handler: Handler, events: NotifyEvent[]) {
  const records = events.map(asRecord);
  return handleAll(handler, records, await handler.prepareBatch!(records));
}

async function handleAll(handler: Handler, records: ConsumedRecord<NotifyEvent>[], batch: Batch) {
  const emitted: { stream: string; key: string | null | undefined; topic?: string }[] = [];
  const trail: NotifyStatusInput[] = [];
  for (const record of records) {
    const ctx: HandlerContext<typeof batch> = {
      batch,
      emit: (stream, value, options) => {
        if (stream === 'notify.status') trail.push(value as NotifyStatusInput);
        else emitted.push({ stream, key: options?.key, topic: options?.topic });
      },
      derivedMeta: () => ({}) as Meta,
      hold: () => undefined,
    };
    await handler.handle(record, ctx);
  }
  return { records, batch, emitted, trail };
}

const story = (trail: readonly NotifyStatusInput[]) =>
  trail.map((s) => `${s.recipient_id} ${s.channel} ${s.outcome}${s.reason ? `:${s.reason}` : ''}`).sort();

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

  test('with push output off nothing goes to notify.push; the skip is counted and trailed', async () => {
    const { handler, metricsRegistry } = handlerWith(fakeStore().store, { emitPush: false });
    const { emitted, trail } = await run(handler, [anEvent()]);
    assert.deepEqual(emitted.map((e) => e.stream).sort(), ['notify.email', 'notify.web']);
    assert.match(
      await metricsRegistry.metrics(),
      /tidings_router_deliveries_total\{channel="push",outcome="skipped",reason="push-disabled"\} 1/,
    );
    assert.deepEqual(story(trail), ['u1 email emitted', 'u1 push skipped:push-disabled', 'u1 web emitted']);
  });

  test('every decision goes to the trail, keyed and identified by what was decided', async () => {
    const { handler } = handlerWith(fakeStore().store);
    const event = anEvent({ recipients: ['u1', 'u2'] });
    const first = await run(handler, [event]);
    assert.deepEqual(story(first.trail), [
      'u1 email emitted',
      'u1 push emitted',
      'u1 web emitted',
      'u2 email emitted',
      'u2 push emitted',
      'u2 web emitted',
    ]);
    const u1email = first.trail.find((s) => s.recipient_id === 'u1' && s.channel === 'email')!;
    assert.equal(u1email.notification_id, notificationId(event.event_id, 'u1', 'email'));
    assert.equal(u1email.stage, 'router');
    // The same event routed again (a replay) makes the same decisions with the same ids.
    const again = await run(handlerWith(fakeStore().store).handler, [event]);
    assert.deepEqual(
      again.trail.map((s) => s.meta.id),
      first.trail.map((s) => s.meta.id),
    );
  });

  test('an event stopped as a whole trails its reason for each recipient and channel', async () => {
    const duplicate = await run(handlerWith(fakeStore(['ev-1']).store).handler, [anEvent()]);
    assert.deepEqual(story(duplicate.trail), [
      'u1 email skipped:duplicate-event',
      'u1 push skipped:duplicate-event',
      'u1 web skipped:duplicate-event',
    ]);
    const held = await run(handlerWith(fakeStore().store, { cap: 1 }).handler, [
      anEvent({ recipients: ['u1', 'u2'] }),
    ]);
    assert.equal(held.emitted[0]?.topic, 'eqiad.notify.event.router.held');
    assert.deepEqual(
      new Set(held.trail.map((s) => `${s.outcome}:${s.reason}`)),
      new Set(['held:chatty-type']),
    );
    assert.equal(held.trail.length, 6);
  });

  test('with the trail off nothing goes to notify.status', async () => {
    const { trail, emitted } = await run(handlerWith(fakeStore().store, { trail: false }).handler, [
      anEvent(),
    ]);
    assert.equal(trail.length, 0);
    assert.equal(emitted.length, 3);
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
  test('a later slice of the batch judges duplicates and throttles with what the earlier slices did', async () => {
    const { store, recorded } = fakeStore();
    const { handler } = handlerWith(store);
    const mention = (id: string) => anEvent({ event_id: id, type: 'mention', category: 'mention' });
    const first = [mention('m1'), mention('m2')].map(asRecord);
    const second = [mention('m1'), mention('m3')].map(asRecord);
    // As the runtime does it at worst: the second slice is loaded before the first is routed.
    const batch = await handler.prepareBatch!(first);
    assert.equal(await handler.prepareBatch!(second, batch), batch, 'one batch state for both slices');
    await handleAll(handler, first, batch);
    const later = await handleAll(handler, second, batch);
    assert.deepEqual(story(later.trail), [
      'u1 email skipped:duplicate-event',
      'u1 email skipped:throttled',
      'u1 push skipped:duplicate-event',
      'u1 push skipped:throttled',
      'u1 web folded',
      'u1 web skipped:duplicate-event',
    ]);
    await handler.afterDurable!([...first, ...second], batch);
    assert.deepEqual(recorded[0]?.processed, ['m1', 'm2', 'm3']);
    assert.deepEqual(
      recorded[0]?.throttle.map((c) => c.count),
      [2],
    );
  });
});
