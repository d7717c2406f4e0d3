/**
 * The digest side's notify.email handler: each notification is mailed at once (transactional,
 * no bundle key, or the first of its bundle key in the interval), held for a bundle, or held for
 * the person's next daily or weekly digest.
 *
 * What may say "done" only once the mail is in Kafka (the emitted ids, an instant send's bundling
 * state) is written in afterDurable, after the runtime's acks=all and before the offsets commit. A
 * crash in between re-mails with the same send_id, which the sender refuses. Within a fetched batch
 * a person's records run one after another, and an instant send not yet written is seen through the
 * batch's own overlay, so the second notification of a bundle key in one batch is held.
 *
 * Bundling goes by event time (a replay decides as the first run did); a digest's due time goes by
 * the clock: a notification replayed or delivered late joins the person's next digest rather than
 * one whose hour has passed. A pending digest keeps its due time when more items join it.
 */
import type pg from 'pg';
import type { Logger } from 'pino';
import { inTransaction } from '../../libs/db/transaction.ts';
import {
  type ConsumedRecord,
  type RecordHandler,
  RejectedRecordError,
} from '../../libs/kafka/consumer-runtime.ts';
import { recordKey } from '../../libs/schemas/stream-keys.ts';
import type { NotifyEmail } from '../../libs/schemas/types.generated.ts';
import type { Trail } from '../../libs/trail/trail.ts';
import { decideBundling } from './bundler.ts';
import { type ComposeSettings, composeMail } from './compose-mail.ts';
import type { DigestMetrics } from './digest-metrics.ts';
import { type DigestSchedule, nextDigestDue } from './digest-schedule.ts';
import { type DigestChoice, digestDecision } from './email-trail.ts';
import {
  holdItem,
  knownNotifications,
  lockBundleState,
  recordBundleSends,
  recordEmitted,
} from './pending-store.ts';

export interface EmailHandlerOptions {
  db: pg.Pool;
  compose: ComposeSettings;
  schedule: DigestSchedule;
  bundleIntervalMs: number;
  metrics: DigestMetrics;
  /** Each choice (sent at once, bundled, queued for a digest) goes to the delivery trail with the mail. */
  trail: Trail;
  log: Logger;
  now: () => number;
}

interface Effects {
  emitted?: { notificationId: string; sendId: string };
  bundleSend?: { recipientId: string; bundleKey: string; sentAt: number };
}

interface Batch {
  known: Set<string>;
  /** By `topic|partition|offset`: what to write once the record's outputs are acknowledged. */
  effects: Map<string, Effects>;
  /** Instant sends of this batch by recipient and bundle key, not yet in bundle_state. */
  lastSent: Map<string, number>;
}

const ADDRESS = /^[^\s@<>,;"]+@[^\s@<>,;"]+$/;

const positionOf = (r: ConsumedRecord<unknown>) => `${r.topic}|${r.partition}|${r.offset}`;
const bundleSlot = (recipientId: string, bundleKey: string) => `${recipientId}\u0000${bundleKey}`;

export function emailHandler(options: EmailHandlerOptions): RecordHandler<NotifyEmail, Batch> {
  const { db, compose, schedule, bundleIntervalMs, metrics, trail, now } = options;

  /** Throws RejectedRecordError for a notification that can never become mail. */
  function compileInstant(record: NotifyEmail) {
    try {
      return composeMail(compose, {
        kind: record.transactional ? 'transactional' : 'instant',
        delivery: record.transactional ? 'at_least_once' : record.delivery,
        recipientId: record.notification.recipient_id,
        email: record.email,
        locale: record.notification.locale,
        timezone: record.notification.timezone,
        items: [{ notification: record.notification, eventTime: record.meta.dt }],
        dt: record.meta.dt,
        requestId: record.meta.request_id,
        now: now(),
      });
    } catch (error) {
      throw new RejectedRecordError('render-failed', `cannot render the mail: ${(error as Error).message}`);
    }
  }

  return {
    async prepareBatch(records) {
      const known = await knownNotifications(
        db,
        records.map((r) => r.value.notification.notification_id),
      );
      return { known, effects: new Map(), lastSent: new Map() };
    },

    async handle(record, context) {
      const value = record.value;
      const n = value.notification;
      if (context.batch.known.has(n.notification_id)) {
        metrics.outcome('duplicate');
        return;
      }
      if (!ADDRESS.test(value.email))
        throw new RejectedRecordError(
          'invalid-address',
          `not a mail address: ${JSON.stringify(value.email)}`,
        );
      // Decided once, in the router's category registry, and carried on the record.
      const isTransactional = value.transactional;
      if (value.email_frequency === 'never' && !isTransactional) {
        metrics.outcome('never');
        return;
      }
      // Rendered even when held: a notification that cannot become mail is dead-lettered now, with
      // its source offset, rather than failing a digest days later.
      const single = compileInstant(value);
      const effects: Effects = {};
      context.batch.effects.set(positionOf(record), effects);
      const tell = (choice: DigestChoice) => {
        if (!trail.enabled) return;
        const about = { eventId: n.event_id, recipientId: n.recipient_id, notificationId: n.notification_id };
        trail.write(context, digestDecision(about, choice));
      };
      const sendNow = () => {
        // Keyed by recipient like the poller's records: one person's mail stays in order on one partition.
        context.emit('notify.email-send', single, { key: recordKey('notify.email-send', single) });
        effects.emitted = { notificationId: n.notification_id, sendId: single.send_id };
        tell({ kind: 'sent-now', sendId: single.send_id, transactional: isTransactional });
      };

      if (isTransactional) {
        sendNow();
        metrics.outcome('transactional');
        return;
      }
      const base = {
        recipientId: n.recipient_id,
        email: value.email,
        locale: n.locale,
        timezone: n.timezone,
      };
      const item = { notification: n, eventTime: value.meta.dt };

      if (value.email_frequency === 'daily' || value.email_frequency === 'weekly') {
        const dueAt = nextDigestDue(n.recipient_id, n.timezone, value.email_frequency, now(), schedule);
        const held = await holdItem(db, { ...base, kind: value.email_frequency, groupKey: '', dueAt }, item);
        metrics.outcome(held ? 'held' : 'duplicate');
        tell({ kind: 'queued', frequency: value.email_frequency, dueAt, timezone: n.timezone, schedule });
        return;
      }

      if (n.bundle_key === null) {
        sendNow();
        metrics.outcome('instant');
        return;
      }
      const bundleKey = n.bundle_key;
      const slot = bundleSlot(n.recipient_id, bundleKey);
      const outcome = await inTransaction(db, async (client) => {
        const stored = await lockBundleState(client, n.recipient_id, bundleKey);
        const sentInBatch = context.batch.lastSent.get(slot);
        const state =
          sentInBatch === undefined
            ? stored
            : { ...stored, lastSentAt: Math.max(stored.lastSentAt ?? sentInBatch, sentInBatch) };
        const decision = decideBundling(
          state,
          { bundleKey, transactional: false, eventTime: value.meta.dt },
          bundleIntervalMs,
        );
        if (decision.action === 'send') return { kind: 'send' as const };
        const held = await holdItem(
          client,
          { ...base, kind: 'bundle', groupKey: bundleKey, dueAt: decision.dueAt },
          item,
        );
        return { kind: held ? ('bundled' as const) : ('duplicate' as const), dueAt: decision.dueAt };
      });
      if (outcome.kind !== 'send') {
        metrics.outcome(outcome.kind);
        tell({ kind: 'bundled', bundleKey, dueAt: outcome.dueAt });
        return;
      }
      sendNow();
      context.batch.lastSent.set(slot, value.meta.dt);
      effects.bundleSend = { recipientId: n.recipient_id, bundleKey, sentAt: value.meta.dt };
      metrics.outcome('instant');
    },

    async afterDurable(records, batch) {
      const emitted = [];
      const bundleSends = [];
      for (const record of records) {
        const effects = batch.effects.get(positionOf(record));
        if (effects?.emitted) emitted.push(effects.emitted);
        if (effects?.bundleSend) bundleSends.push(effects.bundleSend);
      }
      await recordEmitted(db, emitted, now());
      await recordBundleSends(db, bundleSends);
    },
  };
}
