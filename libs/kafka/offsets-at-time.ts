/**
 * Where a point in time falls in each partition's log, by record timestamp: the basis of replay,
 * drop --until, tail --from and a failover's repositioning.
 */
import type { Admin } from 'kafkajs';
import { partitionKey } from './offset-plan.ts';

/** Offsets of the first record at or after `timestamp` on each partition; the log end if none. */
export async function offsetsAt(
  admin: Admin,
  topics: readonly string[],
  timestamp: number,
): Promise<Map<string, number>> {
  const targets = new Map<string, number>();
  for (const topic of topics) {
    const [byTime, bounds] = await Promise.all([
      admin.fetchTopicOffsetsByTimestamp(topic, timestamp),
      admin.fetchTopicOffsets(topic),
    ]);
    for (const { partition, offset } of byTime) {
      const end = Number(bounds.find((b) => b.partition === partition)?.high ?? -1);
      targets.set(partitionKey(topic, partition), Number(offset) >= 0 ? Number(offset) : end);
    }
  }
  return targets;
}
