/**
 * The due-mail poller: bundles and digests whose time has come go out as notify.email-send records.
 *
 * One transaction per small batch: claim the due rows (FOR UPDATE SKIP LOCKED, so several workers
 * and processes share the work), render, produce with acks=all, then delete the rows and record
 * the emitted ids, and commit. A crash after the produce and before the commit leaves the rows to
 * be mailed again with the same send_id (a hash of the same notification ids), which the sender
 * refuses: a duplicate record, never a duplicate mail.
 *
 * The clock is passed in: production passes Date.now, a test drives it through a day.
 */
import type pg from 'pg';
import type { Logger } from 'pino';
import { inTransaction } from '../../libs/db/transaction.ts';
import type { NotifyEmailSend } from '../../libs/schemas/types.generated.ts';
import { type ComposeSettings, composeMail } from './compose-mail.ts';
import type { DigestMetrics } from './digest-metrics.ts';
import { claimDue, completeMails, itemsOf, mailKeyOf, type PendingMail, postpone } from './pending-store.ts';

/** A mail that fails to render is tried again this much later (a template fix, then a restart). */
const RENDER_RETRY_MS = 3_600_000;

export interface DueMailOptions {
  db: pg.Pool;
  compose: ComposeSettings;
  /** Produces the records with acks=all; resolves once Kafka acknowledged every one. */
  produce(records: readonly NotifyEmailSend[]): Promise<void>;
  batchSize: number;
  metrics: DigestMetrics;
  log: Logger;
  now: () => number;
}

/** Mails one batch of due mail; returns how many mails were claimed (0: nothing is due). */
export async function sendDueBatch(options: DueMailOptions): Promise<number> {
  const { db, compose, produce, batchSize, metrics, log, now } = options;
  const started = performance.now();
  const claimed = await inTransaction(db, async (client) => {
    const at = now();
    const mails = await claimDue(client, at, batchSize);
    if (mails.length === 0) return 0;
    const items = await itemsOf(client, mails);
    const records: NotifyEmailSend[] = [];
    const sent: PendingMail[] = [];
    for (const mail of mails) {
      const mailItems = items.get(mailKeyOf(mail)) ?? [];
      if (mailItems.length === 0) {
        // Nothing left to say (its items were cleaned away): the row only needs to go.
        sent.push(mail);
        continue;
      }
      try {
        records.push(
          composeMail(compose, {
            kind: mail.kind,
            // Pending items keep no category choice: a bundle or digest lost at a crash costs more
            // than a second copy under the same Message-ID.
            delivery: 'at_least_once',
            recipientId: mail.recipientId,
            email: mail.email,
            locale: mail.locale,
            timezone: mail.timezone,
            items: mailItems,
            dt: mail.dueAt,
            requestId: null,
            now: at,
          }),
        );
        sent.push(mail);
        metrics.dueMail(mail.kind, 'sent', mailItems.length);
      } catch (err) {
        metrics.dueMail(mail.kind, 'render-failed', mailItems.length);
        log.error(
          { err, recipient_id: mail.recipientId, kind: mail.kind, retry_in_ms: RENDER_RETRY_MS },
          'a due mail cannot be rendered: it stays pending and is tried again later; fix the template',
        );
        await postpone(client, mail, at + RENDER_RETRY_MS);
      }
    }
    await produce(records);
    const emitted = records.flatMap((r) =>
      r.notification_ids.map((id) => ({ notificationId: id, sendId: r.send_id })),
    );
    await completeMails(client, sent, emitted, at);
    return mails.length;
  });
  if (claimed > 0) metrics.duePoll((performance.now() - started) / 1000);
  return claimed;
}

export interface DuePoller {
  /** Drains everything due now, batch after batch, across the workers; resolves when nothing is due. */
  drain(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Polls every `intervalMs`; a poll drains all that is due before the next one is scheduled, so a
 * backlog is worked off at full speed and an idle poll costs one index probe.
 */
export function startDuePoller(options: DueMailOptions & { intervalMs: number; workers: number }): DuePoller {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();

  async function worker(): Promise<void> {
    for (;;) {
      if (stopped || (await sendDueBatch(options)) === 0) return;
    }
  }

  const drain = () => Promise.all(Array.from({ length: options.workers }, worker)).then(() => undefined);

  function schedule() {
    if (stopped) return;
    timer = setTimeout(() => {
      running = drain()
        .catch((err: unknown) => options.log.warn({ err }, 'sending due mail failed; will retry'))
        .finally(schedule);
    }, options.intervalMs);
  }
  schedule();

  return {
    drain,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
