/**
 * The sender side: notify.email-send → SMTP, once per send_id; a message whose outcome a crash left
 * unknown goes again under the same Message-ID unless its category chose at most once.
 *
 *   suppressions  notify.suppression (compacted) materialized into the email schema;
 *   duplicates    the sent ledger, read per batch and claimed per message;
 *   send rate     the warm-up ramp's daily cap (shared through Postgres) and a per-second bucket;
 *                 a spent day holds consumption until the next ramp day;
 *   failures      4xx and broken connections go through the retry topics; an unreachable server
 *                 also holds consumption until a login probe succeeds, so an outage does not walk
 *                 the backlog through the retry ladder into the DLQ; a 5xx for the recipient
 *                 becomes a notify.bounce; a misconfiguration is an operator error: the record stays
 *                 in Kafka, consumption is held and probed, and it goes out once fixed.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { DeferredRecordError, RejectedRecordError } from '../../libs/kafka/consumer-runtime.ts';
import { createKeyedLimiter } from '../../libs/kafka/keyed-limiter.ts';
import { alignmentProblems, parseDkimKeyring } from '../../libs/mail/dkim.ts';
import { addressHash, returnPath } from '../../libs/mail/verp.ts';
import { verpSettingsOf } from '../../libs/mail/verp-config.ts';
import { createTrail } from '../../libs/trail/trail.ts';
import type { EmailContext } from './config.ts';
import { senderDecisions } from './email-trail.ts';
import { createOperatorAlarm } from './operator-alarm.ts';
import { senderDomain } from './outgoing-mail.ts';
import { createDailyBudget, sentOnDay } from './send-budget.ts';
import { type BudgetGrant, type SendOutcome, sendMessage } from './send-message.ts';
import { createSendRateLimiter, rampDayEnd, rampDayOf } from './send-rate.ts';
import { createSenderMetrics } from './sender-metrics.ts';
import {
  claimSend,
  createSentMarker,
  ledgerStates,
  pruneLedger,
  releaseSend,
  retakeSend,
} from './sent-ledger.ts';
import { classifySmtpError } from './smtp-error.ts';
import { createSmtpTransport } from './smtp-transport.ts';
import { liftHandler, suppressedAmong, suppressionHandler } from './suppressions.ts';

const HOLD = {
  budget: 'send-budget',
  unreachable: 'smtp-unreachable',
  misconfigured: 'smtp-misconfigured',
} as const;

export async function startSenderSide(context: EmailContext): Promise<void> {
  const { config, log: parentLog, registry, consume, onShutdown, addReadiness } = context;
  const log = parentLog.child({ side: 'sender' });
  if (!context.db) throw new Error('the email sender needs its database schema');
  const db = context.db;
  // The start-up rules made both required for the sender side (services/email/main.ts).
  const { domain: verpDomain, keyring } = verpSettingsOf({
    VERP_DOMAIN: config.VERP_DOMAIN!,
    VERP_KEYS: config.VERP_KEYS!,
  });
  const dkim =
    config.DKIM_DOMAIN && config.DKIM_KEYS ? parseDkimKeyring(config.DKIM_KEYS, config.DKIM_DOMAIN) : null;
  for (const problem of alignmentProblems({
    from: senderDomain(config.EMAIL_FROM),
    dkim: dkim?.domain ?? null,
    returnPath: verpDomain,
  }))
    log.warn({ problem }, `mail will not be trusted by mailbox providers: ${problem}`);

  const rampStart = Date.parse(config.EMAIL_SEND_RAMP_START);
  const rate = {
    rampStart,
    dailyCaps: config.EMAIL_SEND_DAILY_CAPS.map(Number),
    perSecond: config.EMAIL_SEND_PER_SECOND,
    burst: config.EMAIL_SEND_BURST,
  };
  const today = rampDayOf(rampStart, Date.now());
  const limiter = createSendRateLimiter(rate, { day: today, sentToday: await sentOnDay(db, today) });
  const budget = createDailyBudget(db);
  onShutdown('send budget', () => budget.release());

  const metrics = createSenderMetrics(registry);
  const trail = createTrail({ stage: 'sender', enabled: config.DELIVERY_TRAIL });
  const transport = createSmtpTransport({
    url: config.SMTP_URL,
    maxConnections: config.SMTP_MAX_CONNECTIONS,
    timeoutMs: config.SMTP_TIMEOUT,
    dkim,
  });
  onShutdown('smtp pool', () => transport.close());
  const alarm = createOperatorAlarm({
    log,
    logIntervalMs: config.EMAIL_OPERATOR_LOG_INTERVAL,
    target: transport.target,
    onChange: metrics.operatorError,
  });
  addReadiness('smtp', () => alarm.readiness());

  const sentMarks = createSentMarker(db, {
    intervalMs: 50,
    onError: (err) =>
      log.warn({ err }, "marking sends 'sent' failed; a redelivery of them counts as ambiguous, not resent"),
  });
  onShutdown('sent marks', () => sentMarks.flush());

  const prune = setInterval(() => {
    pruneLedger(db, config.EMAIL_SENT_RETENTION).catch((err) =>
      log.warn({ err }, 'pruning the sent ledger failed; will retry'),
    );
  }, 3_600_000);
  prune.unref();
  onShutdown('ledger prune timer', () => clearInterval(prune));

  await consume({
    stream: 'notify.suppression',
    handler: suppressionHandler(db, config.TIDINGS_DC),
  });
  await consume({ stream: 'notify.erasure', handler: liftHandler(db) });

  /** The login probe: true once the server takes our connection and credentials. */
  async function smtpAnswers(): Promise<boolean> {
    try {
      await transport.verify();
      return true;
    } catch (error) {
      const failure = classifySmtpError(error);
      if (failure.kind === 'operator') alarm.raise(failure);
      return false;
    }
  }

  async function takeBudget(): Promise<BudgetGrant> {
    for (;;) {
      const now = Date.now();
      const permit = limiter.tryAcquire(now);
      // The per-second bucket refills within a second: wait in place rather than hold everything.
      if (!permit.ok && permit.reason === 'per-second') {
        await sleep(Math.max(1, permit.retryAt - now));
        continue;
      }
      if (!permit.ok) return { ok: false, retryAt: permit.retryAt };
      const day = rampDayOf(rampStart, now);
      if (!(await budget.take(day, limiter.capFor(now)))) {
        limiter.refund(now);
        return { ok: false, retryAt: rampDayEnd(rampStart, day) };
      }
      return {
        ok: true,
        giveBack() {
          limiter.refund(Date.now());
          budget.giveBack(day);
        },
      };
    }
  }

  // Two claims per pooled connection: one in its SMTP transaction, one queued behind it, so a
  // connection never idles while the ledger commits the next claim (one per connection cost 15 %
  // of throughput), and a crash still leaves at most two unconfirmed claims per connection.
  const smtpSlotCount = config.SMTP_MAX_CONNECTIONS * 2;
  const smtpSlots = createKeyedLimiter(smtpSlotCount);
  const deps = {
    smtpSlot: <T>(task: () => Promise<T>) => smtpSlots.run(null, task),
    claim: (sendId: string, recipientId: string) => claimSend(db, sendId, recipientId),
    retake: (sendId: string, recipientId: string) => retakeSend(db, sendId, recipientId),
    markSent: sentMarks.mark,
    release: (sendId: string) => releaseSend(db, sendId),
    takeBudget,
    returnPath: (sendId: string, recipient: string) =>
      returnPath({ messageId: sendId, recipient, domain: verpDomain, now: Date.now() }, keyring),
    send: transport.send,
  };

  interface Batch {
    ledger: Awaited<ReturnType<typeof ledgerStates>>;
    suppressed: Set<string>;
  }

  await consume<'notify.email-send', Batch>({
    stream: 'notify.email-send',
    // A batch ends with its last sends in flight, then its marks and its commit: with as many
    // partitions' batches in flight as SMTP slots, other partitions keep the pool busy meanwhile
    // (the runtime's default of 3 left slots empty at every batch end).
    partitionsConsumedConcurrently: smtpSlotCount,
    probeIntervalMs: config.EMAIL_SMTP_PROBE_INTERVAL,
    handler: {
      async prepareBatch(records) {
        const [ledger, suppressed] = await Promise.all([
          ledgerStates(
            db,
            records.map((r) => r.value.send_id),
          ),
          suppressedAmong(
            db,
            records.map((r) => addressHash(r.value.to)),
          ),
        ]);
        return { ledger, suppressed };
      },
      // Marks go out before the batch's offsets commit: a committed record then always reads 'sent',
      // and only an uncommitted one (which comes back) can be found 'sending'.
      afterDurable: () => sentMarks.flush(),
      async handle(record, handlerContext) {
        const { batch, emit, derivedMeta, hold } = handlerContext;
        const message = record.value;
        const hash = addressHash(message.to);
        const timer = metrics.sendTimer();
        const outcome: SendOutcome = await sendMessage(
          message,
          { ledger: batch.ledger.get(message.send_id), suppressed: batch.suppressed.has(hash) },
          deps,
        );
        // Told before the outcome is acted on: a deferral's record goes out with its retry.
        if (trail.enabled)
          for (const decision of senderDecisions(message, outcome))
            trail.write(handlerContext, decision, { evenIfFailed: true });
        const context = { send_id: message.send_id, recipient_id: message.recipient_id };
        switch (outcome.kind) {
          case 'sent':
            timer();
            metrics.outcome(outcome.resent ? 'resent' : 'sent');
            if (outcome.resent)
              log.info(
                { ...context, message_id: message.headers['Message-ID'] },
                'resent a message an earlier attempt left unconfirmed, under the same Message-ID',
              );
            alarm.clear();
            return;
          case 'duplicate':
            metrics.outcome('skipped_duplicate');
            return;
          case 'suppressed':
            metrics.outcome('suppressed');
            return;
          case 'ambiguous':
            metrics.outcome('ambiguous');
            if (outcome.retry)
              throw new Error(`SMTP session broke after the message was handed over: ${outcome.detail}`);
            log.warn(
              { ...context, detail: outcome.detail },
              'message may or may not have been accepted; not sending it again (its category is at most once)',
            );
            return;
          case 'unsendable':
            metrics.outcome('rejected');
            throw new RejectedRecordError('unsendable', outcome.detail);
          case 'no-budget':
            metrics.outcome('deferred');
            hold(HOLD.budget, { until: outcome.retryAt });
            throw new DeferredRecordError('the daily send cap is reached');
        }
        const { failure } = outcome;
        switch (failure.kind) {
          case 'recipient':
            metrics.outcome('bounced');
            alarm.clear();
            emit(
              'notify.bounce',
              {
                meta: { ...derivedMeta('notify.bounce'), dt: Date.now() },
                address_hash: hash,
                address: message.to,
                recipient_id: message.recipient_id,
                notification_id:
                  message.notification_ids.length === 1 ? (message.notification_ids[0] ?? null) : null,
                send_id: message.send_id,
                kind: 'hard',
                status: failure.status,
                smtp_code: failure.smtpCode,
                diagnostic: failure.detail,
                source: 'sender',
                sending_domain: senderDomain(message.from),
              },
              { key: hash },
            );
            return;
          case 'rejected':
            metrics.outcome('rejected');
            throw new RejectedRecordError('smtp-rejected', failure.detail);
          case 'operator':
            metrics.outcome('deferred');
            alarm.raise(failure);
            // A rejected sender passes a login probe: retrying the held message is the probe.
            hold(HOLD.misconfigured, {
              probe: failure.problem === 'sender-rejected' ? async () => true : smtpAnswers,
            });
            throw new DeferredRecordError(`SMTP misconfiguration: ${failure.problem}`);
          case 'transient':
            metrics.outcome('retried');
            if (outcome.unreachable) hold(HOLD.unreachable, { probe: smtpAnswers });
            throw new Error(`SMTP failed transiently: ${failure.detail}`);
        }
      },
    },
  });
  log.info(
    {
      smtp: transport.target,
      pool: config.SMTP_MAX_CONNECTIONS,
      dkim: dkim ? `${dkim.signing.selector}._domainkey.${dkim.domain}` : null,
    },
    'email sender started',
  );
}
