/**
 * Commits chosen offsets for a consumer group that has no members (replay, drop, failover). The
 * group is joined once for all its topics, every partition paused so nothing is consumed, and the
 * seeks are committed before it leaves. KafkaJS's admin.setOffsets does the same one topic at a
 * time and then waits out a whole empty fetch (maxWaitTime, 5 s) per topic, which made a failover
 * of a few groups take minutes.
 */
import type { Kafka } from 'kafkajs';

export interface OffsetToCommit {
  topic: string;
  partition: number;
  offset: string;
}

export async function commitGroupOffsets(
  kafka: Kafka,
  group: string,
  offsets: readonly OffsetToCommit[],
): Promise<void> {
  if (offsets.length === 0) return;
  const topics = [...new Set(offsets.map((o) => o.topic))];
  const consumer = kafka.consumer({ groupId: group, maxWaitTimeInMs: 100 });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      // The first fetch after the join applies the seeks; with auto-commit on, a seek commits.
      consumer.on(consumer.events.FETCH, () => resolve());
      consumer.on(consumer.events.CRASH, ({ payload }) => reject(payload.error));
      consumer.run({ eachBatchAutoResolve: false, eachBatch: async () => undefined }).catch(reject);
      consumer.pause(topics.map((topic) => ({ topic })));
      for (const { topic, partition, offset } of offsets) consumer.seek({ topic, partition, offset });
    });
  } finally {
    await consumer.disconnect();
  }
}
