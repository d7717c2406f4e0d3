/**
 * What an operator watches on the email sender: what became of each message. Why sending is held
 * (send-budget, smtp-unreachable, smtp-misconfigured) is the consumer's
 * tidings_consumer_pause_reasons{group="email-sender"}.
 */
import type { Registry } from 'prom-client';
import { counter, gauge, histogram } from '../../libs/metrics/registry.ts';
import type { OperatorProblem } from './smtp-error.ts';

export const SEND_OUTCOMES = [
  'sent',
  'resent',
  'skipped_duplicate',
  'suppressed',
  'bounced',
  'retried',
  'ambiguous',
  'rejected',
  'deferred',
] as const;
export type SendOutcomeLabel = (typeof SEND_OUTCOMES)[number];

const PROBLEMS: readonly OperatorProblem[] = ['auth', 'sender-rejected', 'unknown-host', 'tls', 'config'];

export function createSenderMetrics(registry: Registry) {
  const messages = counter<'outcome'>(registry, {
    name: 'tidings_email_sender_messages_total',
    help: 'notify.email-send records by outcome: sent, resent (an earlier attempt left it unconfirmed, by a crash or a broken session: sent again under the same Message-ID), skipped_duplicate (already sent), suppressed, bounced (5xx for the recipient), retried (transient SMTP failure), ambiguous (the SMTP outcome is unknown: retried if at least once, left if its category is at most once), rejected (dead-lettered), deferred (held back by the send cap or an operator error)',
    labelNames: ['outcome'],
  });
  for (const outcome of SEND_OUTCOMES) messages.inc({ outcome }, 0);
  const sendSeconds = histogram(registry, {
    name: 'tidings_email_sender_send_seconds',
    help: 'time from handing a message to the SMTP pool to the server accepting it',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });
  const operatorError = gauge<'problem'>(registry, {
    name: 'tidings_email_sender_operator_error',
    help: '1 while an SMTP misconfiguration holds sending (auth, sender-rejected, unknown-host, tls, config); see the log for what to fix',
    labelNames: ['problem'],
  });
  for (const problem of PROBLEMS) operatorError.set({ problem }, 0);
  return {
    outcome: (outcome: SendOutcomeLabel) => messages.inc({ outcome }),
    sendTimer: () => sendSeconds.startTimer(),
    operatorError: (problem: OperatorProblem, active: boolean) =>
      operatorError.set({ problem }, active ? 1 : 0),
  };
}

export type SenderMetrics = ReturnType<typeof createSenderMetrics>;
