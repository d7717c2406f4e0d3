/** What an operator watches on bounce: its doors (SMTP receiver, webhook) and what the ledger did. */
import { Counter, type Registry } from 'prom-client';

export function createBounceMetrics(registry: Registry) {
  const refused = new Counter({
    name: 'tidings_bounce_smtp_refused_total',
    help: 'RCPT TO refused at the VERP domain, by reason (foreign-domain, forged, unknown-key, too-old, malformed, from-the-future; session-limit when a session is closed for too many refusals)',
    labelNames: ['reason'],
    registers: [registry],
  });
  const messages = new Counter({
    name: 'tidings_bounce_smtp_messages_total',
    help: 'mails accepted by the SMTP receiver by outcome: produced (bounce records written), ignored (nothing to act on), dead_lettered (unparseable, kept in the receiver DLQ), deferred (answered 4xx: Kafka away, or dead letters over BOUNCE_DLQ_PER_MINUTE), too_big',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const unattributed = new Counter({
    name: 'tidings_bounce_unattributed_findings_total',
    help: 'addresses a report named that no verified VERP token of the mail was issued for: not acted on',
    registers: [registry],
  });
  const webhook = new Counter({
    name: 'tidings_bounce_webhook_requests_total',
    help: 'webhook requests by outcome: accepted, or refused as missing-signature, malformed-signature, stale, bad-signature, replayed, invalid, too-big, failed',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const records = new Counter({
    name: 'tidings_bounce_records_produced_total',
    help: 'notify.bounce records produced by the receivers, by source and kind',
    labelNames: ['source', 'kind'],
    registers: [registry],
  });
  const actions = new Counter({
    name: 'tidings_bounce_suppression_actions_total',
    help: 'suppression transitions carried out: suppress, lift (release or operator), disable-email',
    labelNames: ['action'],
    registers: [registry],
  });
  return {
    action: (action: string) => actions.inc({ action }),
    refused: (reason: string) => refused.inc({ reason }),
    message: (outcome: 'produced' | 'ignored' | 'dead_lettered' | 'deferred' | 'too_big') =>
      messages.inc({ outcome }),
    unattributed: (n: number) => unattributed.inc(n),
    webhook: (outcome: string) => webhook.inc({ outcome }),
    produced(rs: readonly { source: string; kind: string }[]) {
      for (const r of rs) records.inc({ source: r.source, kind: r.kind });
    },
  };
}

export type BounceMetrics = ReturnType<typeof createBounceMetrics>;
