/**
 * The order in which every materialization of a stream consumed from both datacenter prefixes
 * applies records (docs/architecture.md, "Convergence"): the newest version wins, whatever order
 * the records arrive in. A version is the record's event time, then its kind (a delete beats an
 * upsert of the same instant, so an erasure is never undone by a record from the same moment),
 * then its meta.id, so two different records of one instant pick the same winner in every copy.
 *
 * The tables keep the version as (record_dt, deleted, record_id) and compare it with a row
 * comparison, record_id under COLLATE "C" so Postgres orders ids as this module does.
 */
import type { ConsumedRecord } from '../kafka/consumer-runtime.ts';
import { HEADER, headerInt } from '../kafka/record-headers.ts';

export interface Version {
  /** Event time, ms since the epoch: meta.dt of an upsert, the source timestamp of a delete. */
  readonly dt: number;
  readonly deleted: boolean;
  /** meta.id of an upsert; '' for a delete, which has no envelope. */
  readonly id: string;
}

export function compareVersions(a: Version, b: Version): number {
  if (a.dt !== b.dt) return a.dt < b.dt ? -1 : 1;
  if (a.deleted !== b.deleted) return a.deleted ? 1 : -1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

export function upsertVersion(meta: { dt: number; id: string }): Version {
  return { dt: meta.dt, deleted: false, id: meta.id };
}

/**
 * A tombstone has no meta: its event time is the Kafka timestamp it was written with, which
 * MirrorMaker keeps across datacenters and the retry path keeps in a header (the retried copy is
 * written later, and must not look newer than what overtook it meanwhile).
 */
export function tombstoneTime(record: Pick<ConsumedRecord<null>, 'headers' | 'timestamp'>): number {
  return headerInt(record.headers, HEADER.sourceTimestamp) ?? record.timestamp;
}

/** The newest record per key among a batch: one row per key for a bulk statement. */
export function newestPerKey<T>(
  items: readonly T[],
  key: (item: T) => string,
  version: (item: T) => Version,
): T[] {
  const newest = new Map<string, T>();
  for (const item of items) {
    const k = key(item);
    const seen = newest.get(k);
    if (seen === undefined || compareVersions(version(seen), version(item)) < 0) newest.set(k, item);
  }
  return [...newest.values()];
}
