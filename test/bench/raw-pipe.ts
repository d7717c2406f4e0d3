/**
 * The baseline every pipe benchmark compares against: the raw KafkaJS consume→produce pipe.
 * eachBatch → producer.send(batch, acks=all) → commit, no per-record work unless `transform` adds
 * some. It reads its input from the beginning in a fresh consumer group.
 */
import { randomUUID } from 'node:crypto';
import type { Kafka, KafkaMessage, Message, TopicMessages } from 'kafkajs';
import { createProducer } from '../../libs/kafka/client.ts';
import { withAdmin } from '../integration/harness.ts';

export interface RawPipeOptions {
  kafka: Kafka;
  input: string;
  /** Where the records go; `produce` may name other topics instead. */
  output: string;
  /** How many records the input holds: the pipe is done when the group has committed them all. */
  records: number;
  partitions: number;
  /** Per-batch work on top of the raw pipe; by default records are copied as they are. */
  transform?: (messages: KafkaMessage[]) => Promise<Message[]>;
  /**
   * Instead of `transform`: per batch, the requests to send in turn, each with its records by
   * topic (a fan-out larger than the input needs more than one request).
   */
  produce?: (messages: KafkaMessage[]) => TopicMessages[][];
}

/**
 * A pipe's run from its first record received to its last offset committed: records per second,
 * and this process's CPU time per record (µs, user + system). Connecting, joining the group and
 * stopping are left out of both: they cost the same whatever the number of records.
 */
export interface PipeRun {
  perSecond: number;
  cpuUsPerRecord: number;
}

/** Marks a pipe's first record (`first`, any number of times) and measures up to its last commit. */
export function pipeWindow(kafka: Kafka, group: string, topic: string, records: number) {
  let started = 0;
  let cpu: NodeJS.CpuUsage | undefined;
  return {
    first() {
      if (started) return;
      started = performance.now();
      cpu = process.cpuUsage();
    },
    async done(): Promise<PipeRun> {
      const done = await committedAll(kafka, group, topic, records);
      const used = process.cpuUsage(cpu);
      return {
        perSecond: records / ((done - started) / 1000),
        cpuUsPerRecord: (used.user + used.system) / records,
      };
    },
  };
}

export async function rawPipe(options: RawPipeOptions): Promise<PipeRun> {
  const { kafka, input, output, records, partitions, transform, produce } = options;
  const group = `bench-raw-${randomUUID()}`;
  const producer = createProducer(kafka);
  const consumer = kafka.consumer({ groupId: group, maxWaitTimeInMs: 250 });
  await producer.connect();
  await consumer.connect();
  await consumer.subscribe({ topic: input, fromBeginning: true });
  const window = pipeWindow(kafka, group, input, records);
  await consumer.run({
    autoCommit: false,
    partitionsConsumedConcurrently: partitions,
    eachBatch: async ({ batch, resolveOffset, commitOffsetsIfNecessary }) => {
      window.first();
      if (produce) {
        for (const topicMessages of produce(batch.messages))
          await producer.sendBatch({ acks: -1, topicMessages });
      } else {
        const messages = transform
          ? await transform(batch.messages)
          : batch.messages.map((m) => ({ key: m.key, value: m.value, headers: m.headers }));
        await producer.send({ topic: output, acks: -1, messages });
      }
      resolveOffset(batch.lastOffset());
      await commitOffsetsIfNecessary({
        topics: [
          {
            topic: batch.topic,
            partitions: [
              { partition: batch.partition, offset: (BigInt(batch.lastOffset()) + 1n).toString() },
            ],
          },
        ],
      });
    },
  });
  const run = await window.done();
  await consumer.disconnect();
  await producer.disconnect();
  return run;
}

/** Resolves with the time at which `group` has committed `records` records of `topic`. */
export async function committedAll(
  kafka: Kafka,
  group: string,
  topic: string,
  records: number,
): Promise<number> {
  return withAdmin(kafka, async (admin) => {
    for (;;) {
      const [offsets] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
      const total = (offsets?.partitions ?? []).reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
      if (total >= records) return performance.now();
      await new Promise((r) => setTimeout(r, 20));
    }
  });
}
