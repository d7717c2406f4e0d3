/**
 * Materializes the people the router routes to: notify.user (compacted; a tombstone erases the
 * person) and notify.preference-change, each in its own consumer group, into the router's schema.
 * The stores apply "newer meta.dt wins", so the mirrored copy of a record from the other
 * datacenter, arriving late, changes nothing.
 */
import type { RecordHandler } from '../../libs/kafka/consumer-runtime.ts';
import type { NotifyPreferenceChange, NotifyUser } from '../../libs/schemas/types.generated.ts';
import type { RouterStore } from './store.ts';

export function userHandler(store: RouterStore): RecordHandler<NotifyUser> {
  return {
    handle: (record) => store.upsertUser(record.value),
    async handleTombstone(record) {
      if (record.key !== null) await store.eraseUser(record.key);
    },
  };
}

export function preferenceChangeHandler(store: RouterStore): RecordHandler<NotifyPreferenceChange> {
  return { handle: (record) => store.applyPreferenceChange(record.value) };
}
