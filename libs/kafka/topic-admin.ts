/**
 * Creating topics and waiting until every partition has a leader. KafkaJS's own
 * `waitForLeaders` can reject outside the caller's promise (an unhandled
 * UNKNOWN_TOPIC_OR_PARTITION while metadata lags behind the creation), which kills the process;
 * polling the metadata here keeps the failure where it can be handled.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin, ITopicConfig } from 'kafkajs';

export async function createTopicsWithLeaders(
  admin: Admin,
  topics: readonly ITopicConfig[],
  { timeoutMs = 30_000 }: { timeoutMs?: number } = {},
): Promise<void> {
  if (topics.length === 0) return;
  await admin.createTopics({ topics: [...topics], waitForLeaders: false });
  const names = topics.map((t) => t.topic);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const metadata = await admin.fetchTopicMetadata({ topics: names }).catch(() => null);
    const ready = metadata?.topics.every(
      (t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0),
    );
    if (ready) return;
    if (Date.now() > deadline) {
      throw new Error(`topics ${names.join(', ')} have no leader for every partition after ${timeoutMs} ms`);
    }
    await sleep(100);
  }
}
