/**
 * What the person read on the web does not go out by mail (Echo does not mail what was already
 * read): notify.inbox-state "read" records drop the matching items from pending bundles and
 * digests. Channels have their own notification ids, so items match by event id, or by event time
 * for "mark all read up to". A mail left without items is removed by the due-mail poller.
 */
import type pg from 'pg';
import type { Registry } from 'prom-client';
import type { RecordHandler } from '../../libs/kafka/consumer-runtime.ts';
import { counter } from '../../libs/metrics/registry.ts';
import type { NotifyInboxState } from '../../libs/schemas/types.generated.ts';

export function webReadsHandler(db: pg.Pool, registry: Registry): RecordHandler<NotifyInboxState> {
  const dropped = counter(registry, {
    name: 'tidings_email_read_on_web_total',
    help: 'pending bundle and digest items dropped because the person read them on the web',
  });
  return {
    async handle({ value }) {
      if (value.action !== 'read' || (value.event_ids.length === 0 && value.up_to === null)) return;
      // pending_items' primary key starts with recipient_id: one person's items are scanned.
      const { rowCount } = await db.query(
        `DELETE FROM pending_items WHERE recipient_id = $1
           AND (payload->>'event_id' = ANY($2) OR event_time <= $3)`,
        [value.user_id, value.event_ids, value.up_to === null ? null : new Date(value.up_to)],
      );
      dropped.inc(rowCount ?? 0);
    },
  };
}
