/**
 * Creating topics and waiting until every partition's leader serves it. KafkaJS's own
 * `waitForLeaders` can reject outside the caller's promise (an unhandled
 * UNKNOWN_TOPIC_OR_PARTITION while metadata lags behind the creation), which kills the process.
 * And a leader named in the metadata may still answer NOT_LEADER_FOR_PARTITION for a moment, so
 * readiness is an offsets request that succeeds for every topic.
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
    if (await serving(admin, names)) return;
    if (Date.now() > deadline) {
      throw new Error(
        `topics ${names.join(', ')} have no serving leader for every partition after ${timeoutMs} ms`,
      );
    }
    await sleep(100);
  }
}

async function serving(admin: Admin, topics: readonly string[]): Promise<boolean> {
  try {
    const metadata = await admin.fetchTopicMetadata({ topics: [...topics] });
    if (!metadata.topics.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))) {
      return false;
    }
    for (const topic of topics) await admin.fetchTopicOffsets(topic);
    return true;
  } catch {
    return false;
  }
}
