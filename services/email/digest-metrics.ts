/**
 * What the digest side decided and sent: tidings_email_digest_outcomes_total, tidings_email_digest_mails_total,
 * tidings_email_unsubscribe_requests_total, and the tidings_email_pending_mails gauge.
 */
import type { Registry } from 'prom-client';
import { counter, gauge, histogram } from '../../libs/metrics/registry.ts';

/**
 * Per notify.email record: instant | transactional (mailed at once), bundled (held for a bundle),
 * held (held for a digest), duplicate (already mailed or held), never (frequency never, dropped).
 */
export type Outcome = 'instant' | 'transactional' | 'bundled' | 'held' | 'duplicate' | 'never';

export type UnsubscribeResult =
  | 'unsubscribed'
  | 'confirm-page'
  | 'malformed'
  | 'unknown-key'
  | 'bad-signature'
  | 'expired'
  | 'publish-failed';

export interface DigestMetrics {
  outcome(outcome: Outcome): void;
  /** A bundle or digest went out from the pending tables, or failed to render. */
  dueMail(kind: string, result: 'sent' | 'render-failed', items: number): void;
  duePoll(seconds: number): void;
  unsubscribe(method: string, result: UnsubscribeResult): void;
  /** Called at scrape time; returns the pending and due mail counts. */
  watchPending(count: () => Promise<{ pending: number; due: number }>): void;
}

export function createDigestMetrics(registry: Registry): DigestMetrics {
  const outcomes = counter(registry, {
    name: 'tidings_email_digest_outcomes_total',
    help: 'notify.email records by what the digest side did with them',
    labelNames: ['outcome'] as const,
  });
  const mails = counter(registry, {
    name: 'tidings_email_digest_mails_total',
    help: 'Bundles and digests taken from the pending tables, by kind and result',
    labelNames: ['kind', 'result'] as const,
  });
  const mailItems = counter(registry, {
    name: 'tidings_email_digest_mail_items_total',
    help: 'Notifications carried by bundles and digests sent',
    labelNames: ['kind'] as const,
  });
  const polls = histogram(registry, {
    name: 'tidings_email_due_poll_seconds',
    help: 'Duration of one due-mail transaction (claim, render, produce with acks=all, commit)',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });
  const unsubscribes = counter(registry, {
    name: 'tidings_email_unsubscribe_requests_total',
    help: 'Requests to the one-click unsubscribe endpoint, by method and result',
    labelNames: ['method', 'result'] as const,
  });
  let countPending: (() => Promise<{ pending: number; due: number }>) | undefined;
  gauge(registry, {
    name: 'tidings_email_pending_mails',
    help: 'Bundles and digests waiting in the pending tables; state=due: past their due time',
    labelNames: ['state'] as const,
    async collect() {
      if (!countPending) return;
      const { pending, due } = await countPending();
      this.set({ state: 'all' }, pending);
      this.set({ state: 'due' }, due);
    },
  });
  return {
    outcome: (outcome) => outcomes.inc({ outcome }),
    dueMail(kind, result, items) {
      mails.inc({ kind, result });
      if (result === 'sent') mailItems.inc({ kind }, items);
    },
    duePoll: (seconds) => polls.observe(seconds),
    unsubscribe: (method, result) => unsubscribes.inc({ method, result }),
    watchPending(count) {
      countPending = count;
    },
  };
}
