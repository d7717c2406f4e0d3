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
  // The time-out is for a stall, not the whole wait: a busy broker bringing up the leaders of the
  // whole topic plan (a thousand partitions, `make stack-init`) takes longer, and gets there.
  let pending = topics.map((t) => t.topic);
  let deadline = Date.now() + timeoutMs;
  for (;;) {
    const waiting = await notServing(admin, pending);
    if (waiting.length === 0) return;
    if (waiting.length < pending.length) deadline = Date.now() + timeoutMs;
    else if (Date.now() > deadline) {
      throw new Error(
        `topics ${waiting.join(', ')} have no serving leader for every partition after ${timeoutMs} ms`,
      );
    }
    pending = waiting;
    await sleep(100);
  }
}

/** Those of `topics` not served yet; all of them while the cluster does not answer. */
async function notServing(admin: Admin, topics: readonly string[]): Promise<string[]> {
  try {
    const metadata = await admin.fetchTopicMetadata({ topics: [...topics] });
    const led = new Set(
      metadata.topics
        .filter((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))
        .map((t) => t.name),
    );
    const waiting: string[] = [];
    for (const topic of topics) {
      if (
        !led.has(topic) ||
        !(await admin.fetchTopicOffsets(topic).then(
          () => true,
          () => false,
        ))
      )
        waiting.push(topic);
    }
    return waiting;
  } catch {
    return [...topics];
  }
}
