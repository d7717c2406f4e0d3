/**
 * Reads chosen offset ranges of topic partitions without committing anything: for operators'
 * tools (tail, dlq show, the timestamp behind a lag). KafkaJS consumers always belong to a group,
 * so each read uses a throwaway group under READER_GROUP_PREFIX, which lag reports leave out.
 */
import { randomBytes } from 'node:crypto';
import type { Kafka, KafkaMessage } from 'kafkajs';

export const READER_GROUP_PREFIX = 'tidings-cli-reader-';

export interface ReadRange {
  topic: string;
  partition: number;
  from: number;
  /** Exclusive; ignored when following. */
  to: number;
}

export interface ReadRecord {
  topic: string;
  partition: number;
  message: KafkaMessage;
}

export interface ReadOptions {
  ranges: readonly ReadRange[];
  /** Return false to stop reading. */
  onRecord(record: ReadRecord): boolean | undefined;
  /** Keep reading past `to` until `signal` aborts. */
  follow?: boolean;
  signal?: AbortSignal;
  /** Gives up on ranges not read by then (a finite read only); default 15 s. */
  timeoutMs?: number;
}

export async function readRanges(kafka: Kafka, options: ReadOptions): Promise<void> {
  const follow = options.follow ?? false;
  const pending = new Map<string, ReadRange>(
    options.ranges
      .filter((r) => follow || r.from < r.to)
      .map((r) => [`${r.topic}:${r.partition}`, r] as const),
  );
  if (pending.size === 0 || options.signal?.aborted) return;
  const consumer = kafka.consumer({
    groupId: `${READER_GROUP_PREFIX}${randomBytes(6).toString('hex')}`,
    maxWaitTimeInMs: 100,
  });
  let closed = false;
  let resolveFinished = () => {};
  const finished = new Promise<void>((resolve) => {
    resolveFinished = resolve;
  });
  // Batches already fetched keep arriving until the consumer disconnects; they are not wanted.
  const finish = () => {
    closed = true;
    resolveFinished();
  };
  const timer = follow ? undefined : setTimeout(() => finish(), options.timeoutMs ?? 15_000);
  options.signal?.addEventListener('abort', () => finish(), { once: true });
  const done = (key: string) => {
    pending.delete(key);
    if (pending.size === 0) finish();
  };
  await consumer.connect();
  try {
    await consumer.subscribe({
      topics: [...new Set([...pending.values()].map((r) => r.topic))],
      fromBeginning: true,
    });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic, partition, message }) => {
        if (closed) return;
        const key = `${topic}:${partition}`;
        const range = pending.get(key);
        if (range === undefined) {
          consumer.pause([{ topic, partitions: [partition] }]);
          return;
        }
        const offset = Number(message.offset);
        if (offset < range.from) return;
        if (!follow && offset >= range.to) return done(key);
        if (options.onRecord({ topic, partition, message }) === false) return finish();
        if (!follow && offset + 1 >= range.to) done(key);
      },
    });
    for (const r of pending.values())
      consumer.seek({ topic: r.topic, partition: r.partition, offset: String(r.from) });
    await finished;
  } finally {
    clearTimeout(timer);
    await consumer.disconnect();
  }
}
