/**
 * notify.erasure: deletes that outlive compaction (docs/architecture.md, "Convergence").
 *
 * A tombstone on a compacted stream leaves the topic after delete.retention.ms, but the other
 * datacenter's copy of the deleted record stays in its own compacted topic for ever, and a rebuild
 * from empty tables would bring it back. So the service that materializes a compacted stream turns
 * every tombstone written in its own datacenter into a notify.erasure record, which is never
 * tombstoned: its meta.dt is the delete's event time, and every consumer applies it like the
 * tombstone itself, newest version wins.
 */
import type { ConsumedRecord, HandlerContext } from '../kafka/consumer-runtime.ts';
import { tombstoneTime } from './version.ts';

export type ErasableStream = 'notify.user' | 'notify.push-subscription' | 'notify.suppression';

/**
 * The delete a tombstone stands for, with its event time; queued as a notify.erasure record when
 * the tombstone was written in `dc`, so the record is acknowledged before the tombstone's offset
 * commits. Each datacenter records its own deletes once; the mirrored ones are the other's to record.
 */
export function deleteOf(
  record: ConsumedRecord<null>,
  context: HandlerContext<unknown>,
  stream: ErasableStream,
  dc: string,
): { key: string; at: number } | null {
  if (record.key === null) return null;
  const at = tombstoneTime(record);
  if (record.originDc === dc) {
    context.emit(
      'notify.erasure',
      { meta: { ...context.derivedMeta('notify.erasure'), dt: at }, stream, key: record.key },
      { key: `${stream}|${record.key}` },
    );
  }
  return { key: record.key, at };
}
