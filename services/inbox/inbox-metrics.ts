/** What an operator watches on the inbox: what notify.web records became, API latency, live streams, refused tokens. */
import type { Registry } from 'prom-client';
import { counter, gauge, histogram } from '../../libs/metrics/registry.ts';
import type { StoreOutcome } from './store.ts';
import type { TokenRefusal } from './token.ts';

export function createInboxMetrics(registry: Registry) {
  const stored = counter(registry, {
    name: 'tidings_inbox_notifications_total',
    help: 'notify.web records by outcome: stored, duplicate (redelivery or replay), erased, removed (by the cap), too-old',
    labelNames: ['outcome'],
  });
  const requests = histogram(registry, {
    name: 'tidings_inbox_request_seconds',
    help: 'inbox API requests by route and status',
    labelNames: ['route', 'status'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  });
  const streams = gauge(registry, {
    name: 'tidings_inbox_live_streams',
    help: 'open Server-Sent Event streams',
  });
  const refused = counter(registry, {
    name: 'tidings_inbox_token_refusals_total',
    help: 'requests refused with 401, by reason (missing, malformed, unknown-key, bad-signature, expired, too-long)',
    labelNames: ['reason'],
  });
  const swept = counter(registry, {
    name: 'tidings_inbox_swept_total',
    help: 'notifications deleted for being older than INBOX_MAX_AGE',
  });
  return {
    stored: (outcome: StoreOutcome) => stored.inc({ outcome }),
    request: (route: string, status: number, ms: number) =>
      requests.observe({ route, status: String(status) }, ms / 1000),
    streams: (open: number) => streams.set(open),
    refused: (reason: TokenRefusal) => refused.inc({ reason }),
    swept: (count: number) => swept.inc(count),
  };
}

export type InboxMetrics = ReturnType<typeof createInboxMetrics>;
