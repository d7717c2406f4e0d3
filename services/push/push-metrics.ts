/** What an operator watches on push: how full multicasts are, and what providers said per token. */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { PushProvider } from '../../libs/schemas/types.generated.ts';
import type { WindowDeps } from './deliver-window.ts';

export function createPushMetrics(registry: Registry) {
  const calls = new Counter({
    name: 'tidings_push_multicast_calls_total',
    help: 'multicast calls to the provider (sendEachForMulticast), by provider',
    labelNames: ['provider'],
    registers: [registry],
  });
  const tokensPerCall = new Histogram({
    name: 'tidings_push_multicast_tokens',
    help: 'tokens per multicast call; at most 500',
    labelNames: ['provider'],
    buckets: [1, 10, 50, 100, 250, 450, 500],
    registers: [registry],
  });
  const tokens = new Counter({
    name: 'tidings_push_tokens_total',
    help: 'tokens by outcome: delivered, dead (tombstoned), transient (retried), rejected (dead-lettered), skipped (already had it)',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const windows = new Counter({
    name: 'tidings_push_windows_total',
    help: 'batching windows flushed',
    registers: [registry],
  });
  const notifications = new Counter({
    name: 'tidings_push_notifications_total',
    help: 'notify.push records handled, and pushes they became (one per person per window)',
    labelNames: ['kind'],
    registers: [registry],
  });
  const observe: NonNullable<WindowDeps['observe']> = {
    token(outcome) {
      tokens.inc({ outcome });
    },
  };
  return {
    observe,
    multicast(provider: PushProvider, count: number) {
      calls.inc({ provider });
      tokensPerCall.observe({ provider }, count);
    },
    window(records: number, pushes: number) {
      windows.inc();
      notifications.inc({ kind: 'records' }, records);
      notifications.inc({ kind: 'pushes' }, pushes);
    },
    suppressed(records: number) {
      notifications.inc({ kind: 'suppressed' }, records);
    },
    /** Windows holding records not sent yet: a crash now would have them fetched and sent again. */
    watchWindows(open: () => number) {
      new Gauge({
        name: 'tidings_push_windows_open',
        help: 'batching windows holding records that are not sent yet',
        registers: [registry],
        collect() {
          this.set(open());
        },
      });
    },
  };
}
