/**
 * Materializes the people the router routes to: notify.user (compacted; a tombstone erases the
 * person), notify.erasure (erasures that outlive compacted tombstones) and notify.preference-change,
 * each in its own consumer group, into the router's schema. The store applies "newest version wins"
 * (libs/convergence/version.ts), so the order records arrive in does not matter: not across the two
 * prefixes, not through the retry path, not on a replay or a rebuild.
 *
 * notify.user is written in bulk: one statement per fetched batch (prepareBatch), which is what
 * makes a rebuild from empty tables take minutes instead of hours. Should that statement fail, each
 * record is applied on its own, so one bad record goes through the retry path alone.
 */
import { deleteOf } from '../../libs/convergence/erasure.ts';
import type { RecordHandler } from '../../libs/kafka/consumer-runtime.ts';
import type {
  NotifyErasure,
  NotifyPreferenceChange,
  NotifyUser,
} from '../../libs/schemas/types.generated.ts';
import type { RouterStore } from './store.ts';

interface UserBatch {
  applied: boolean;
}

/** A tombstone written in this datacenter also becomes a notify.erasure record (libs/convergence/erasure.ts). */
export function userHandler(store: RouterStore, dc: string): RecordHandler<NotifyUser, UserBatch> {
  return {
    async prepareBatch(records) {
      try {
        await store.applyUsers(records.map((r) => r.value));
        return { applied: true };
      } catch {
        return { applied: false };
      }
    },
    async handle(record, { batch }) {
      if (!batch.applied) await store.applyUsers([record.value]);
    },
    async handleTombstone(record, context) {
      const erased = deleteOf(record, context, 'notify.user', dc);
      if (erased) await store.eraseUser(erased.key, erased.at);
    },
  };
}

export function erasureHandler(store: RouterStore): RecordHandler<NotifyErasure> {
  return {
    async handle({ value }) {
      if (value.stream === 'notify.user') await store.eraseUser(value.key, value.meta.dt);
    },
  };
}

export function preferenceChangeHandler(store: RouterStore): RecordHandler<NotifyPreferenceChange> {
  return { handle: (record) => store.applyPreferenceChange(record.value) };
}
