/** What the router decided, by outcome and reason: tidings_router_events_total and tidings_router_deliveries_total. */
import type { Registry } from 'prom-client';
import { tallied } from '../../libs/metrics/hot-path.ts';
import { counter } from '../../libs/metrics/registry.ts';
import type { Channel } from '../../libs/schemas/types.generated.ts';

export interface RoutingMetrics {
  /** outcome: routed | skipped | dead-letter | held; reason: '' for routed. */
  event(outcome: string, reason: string): void;
  /** outcome: emitted | folded | skipped; reason: '' unless skipped. */
  delivery(channel: Channel, outcome: string, reason: string): void;
  chattyTrip(type: string): void;
}

export function createRoutingMetrics(registry: Registry): RoutingMetrics {
  // Counted once per event and once per recipient and channel: tallied.
  const events = tallied(registry, {
    name: 'tidings_router_events_total',
    help: 'Events the router decided on, by outcome and reason',
    labelNames: ['outcome', 'reason'] as const,
  });
  const deliveries = tallied(registry, {
    name: 'tidings_router_deliveries_total',
    help: 'Per recipient and channel decisions, by outcome and reason',
    labelNames: ['channel', 'outcome', 'reason'] as const,
  });
  const trips = counter(registry, {
    name: 'tidings_router_chatty_trips_total',
    help: 'Times an event type passed the chatty cap in a window and its events started to be held',
    labelNames: ['type'] as const,
  });
  return {
    event: (outcome, reason) => events.inc(outcome, reason),
    delivery: (channel, outcome, reason) => deliveries.inc(channel, outcome, reason),
    chattyTrip: (type) => trips.inc({ type }),
  };
}
