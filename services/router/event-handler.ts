/**
 * notify.event → notify.web | notify.email | notify.push, one record per person and channel, keyed
 * by recipient. Per slice of a fetched batch, one statement reads the event ids already processed,
 * the people, throttle counts and type volumes (prefetch.ts, store.ts), the next slice's while this
 * one's events are routed; each event is routed (route.ts) and its records emitted. Once Kafka acknowledged them, afterDurable stores in
 * one transaction which events are done and what the throttles and the chatty guard counted: an
 * event is never marked done before its notifications are durable.
 *
 * Unknown categories are dead-lettered. Events of a chatty type are parked, unchanged, on the hold
 * topic `<dc>.notify.event.router.held` (holdTopicOf in the topic plan), for an operator to release
 * or drop.
 */
import {
  type ConsumedRecord,
  type RecordHandler,
  RejectedRecordError,
} from '../../libs/kafka/consumer-runtime.ts';
import type { NotifyEvent } from '../../libs/schemas/types.generated.ts';
import type { Trail } from '../../libs/trail/trail.ts';
import type { CategoryRegistry } from './categories.ts';
import type { Origin } from './channel-records.ts';
import { type ChattyCap, type ChattyGuard, createChattyGuard } from './chatty-guard.ts';
import { createDedupLedger, type DedupLedger } from './dedup.ts';
import { batchKeys } from './prefetch.ts';
import type { Recipient } from './recipient.ts';
import { type RoutingPolicy, routeEvent } from './route.ts';
import type { RoutingMetrics } from './routing-metrics.ts';
import type { RouterStore } from './store.ts';
import { createThrottleLedger, type ThrottleLedger } from './throttle.ts';
import { trailDecisions } from './trail-decisions.ts';

export interface EventHandlerOptions {
  store: RouterStore;
  registry: CategoryRegistry;
  policy: RoutingPolicy;
  cap: ChattyCap;
  origin: Origin;
  /** Where held events go. */
  holdTopic: string;
  /** Every decision goes to the delivery trail (notify.status) with the channel records. */
  trail: Trail;
  metrics: RoutingMetrics;
  onChattyTrip(event: NotifyEvent): void;
  now?: () => number;
}

interface EventBatch {
  dedup: DedupLedger;
  throttle: ThrottleLedger;
  chatty: ChattyGuard;
  recipients: Map<string, Recipient>;
}

export function eventHandler(opts: EventHandlerOptions): RecordHandler<NotifyEvent, EventBatch> {
  const { store, registry, policy, cap, origin, metrics, now = Date.now } = opts;
  return {
    // Called per slice of a fetched batch (prepareSlice in main.ts), the next slice's look-up while
    // this one's records are routed: later slices add their state to the batch's ledgers, so an
    // event or a count the batch already saw is judged with what the batch did so far.
    async prepareBatch(records, previous) {
      // Duplicates are rare (replays, redeliveries), so loading their people too costs less than
      // a second round trip after the dedup answer.
      const loaded = await store.loadBatch(
        batchKeys(
          records.map((r) => r.value),
          registry,
          cap,
        ),
      );
      if (previous) {
        previous.dedup.addStored(loaded.processed);
        previous.throttle.addStored(loaded.throttleCounts);
        previous.chatty.addStored(loaded.typeVolumes);
        for (const [id, recipient] of loaded.recipients) previous.recipients.set(id, recipient);
        return previous;
      }
      return {
        dedup: createDedupLedger(loaded.processed),
        throttle: createThrottleLedger(loaded.throttleCounts),
        chatty: createChattyGuard(cap, loaded.typeVolumes),
        recipients: new Map(loaded.recipients),
      };
    },

    handle(record, ctx) {
      const event = record.value;
      const routing = routeEvent(event, {
        ...ctx.batch,
        registry,
        policy,
        origin,
        now: now(),
      });
      if (opts.trail.enabled) {
        for (const decision of trailDecisions(event, routing, registry, opts.holdTopic))
          opts.trail.write(ctx, decision);
      }
      switch (routing.outcome) {
        case 'skipped':
          metrics.event('skipped', routing.reason);
          return;
        case 'dead-letter':
          metrics.event('dead-letter', routing.reason);
          throw new RejectedRecordError(routing.reason, routing.error);
        case 'held':
          metrics.event('held', routing.reason);
          if (routing.tripped) {
            metrics.chattyTrip(event.type);
            opts.onChattyTrip(event);
          }
          ctx.emit('notify.event', event, { key: record.key, topic: opts.holdTopic });
          return;
        case 'routed':
          metrics.event('routed', '');
          for (const decision of routing.decisions) {
            if (decision.outcome === 'skipped') {
              metrics.delivery(decision.channel, 'skipped', decision.reason);
            } else {
              metrics.delivery(decision.channel, decision.outcome, '');
              const key = decision.recipientId;
              if (decision.channel === 'web') ctx.emit('notify.web', decision.record, { key });
              else if (decision.channel === 'email') ctx.emit('notify.email', decision.record, { key });
              else ctx.emit('notify.push', decision.record, { key });
            }
          }
      }
    },

    async afterDurable(records: readonly ConsumedRecord<NotifyEvent>[], batch: EventBatch) {
      // Only events whose notifications are durable are done; one that failed is routed again.
      const durable = new Set(records.map((r) => r.value.event_id));
      await store.recordBatch({
        processed: batch.dedup.newlyProcessed().filter((id) => durable.has(id)),
        throttle: batch.throttle.increments(),
        volumes: batch.chatty.increments(),
      });
    },
  };
}
