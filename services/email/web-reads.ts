/**
 * What the person read on the web does not go out by mail (Echo does not mail what was already
 * read): notify.inbox-state "read" records drop the matching items from pending bundles and
 * digests. Channels have their own notification ids, so items match by event id, or by event time
 * for "mark all read up to". A mail left without items is removed by the due-mail poller. Each
 * dropped item goes to the delivery trail as dropped, read-on-web.
 */
import type pg from 'pg';
import type { Registry } from 'prom-client';
import type { RecordHandler } from '../../libs/kafka/consumer-runtime.ts';
import { counter } from '../../libs/metrics/registry.ts';
import type { NotifyInboxState } from '../../libs/schemas/types.generated.ts';
import type { Trail } from '../../libs/trail/trail.ts';
import { digestDecision } from './email-trail.ts';

export function webReadsHandler(
  db: pg.Pool,
  registry: Registry,
  trail: Trail,
): RecordHandler<NotifyInboxState> {
  const dropped = counter(registry, {
    name: 'tidings_email_read_on_web_total',
    help: 'pending bundle and digest items dropped because the person read them on the web',
  });
  return {
    async handle({ value }, context) {
      if (value.action !== 'read' || (value.event_ids.length === 0 && value.up_to === null)) return;
      // pending_items' primary key starts with recipient_id: one person's items are scanned.
      const { rows } = await db.query<{ notification_id: string; event_id: string }>(
        `DELETE FROM pending_items WHERE recipient_id = $1
           AND (payload->>'event_id' = ANY($2) OR event_time <= $3)
         RETURNING notification_id, payload->>'event_id' AS event_id`,
        [value.user_id, value.event_ids, value.up_to === null ? null : new Date(value.up_to)],
      );
      dropped.inc(rows.length);
      if (!trail.enabled) return;
      for (const row of rows) {
        const about = {
          eventId: row.event_id,
          recipientId: value.user_id,
          notificationId: row.notification_id,
        };
        trail.write(context, digestDecision(about, { kind: 'read-on-web' }));
      }
    },
  };
}
