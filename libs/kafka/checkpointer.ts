/**
 * Publishes, per consumer group and partition, how far the group has durably got: the committed
 * offset, the Kafka timestamp of the last record below it and that record's event time. After a
 * datacenter loss the mirrored copy of this stream is all the surviving side knows about the lost
 * consumers, and `tidings failover` repositions groups by these timestamps.
 */
import { randomUUID } from 'node:crypto';
import type { Outbox } from './outbox.ts';
import type { RecordCodec } from './record-codec.ts';
import { topicFor } from './topics.ts';

export const CHECKPOINT_STREAM = 'notify.checkpoint';

export interface Position {
  offset: bigint;
  recordTime: number;
  eventTime: number | null;
}

export interface Checkpointer {
  update(topic: string, partition: number, position: Position): void;
  /** Publishes positions that moved since the last publish; what fails to go is kept for the next. */
  publish(): Promise<void>;
}

export function checkpointKey(group: string, topic: string, partition: number): string {
  return `${group}|${topic}|${partition}`;
}

export function createCheckpointer(opts: {
  group: string;
  dc: string;
  service: string;
  codec: RecordCodec;
  outbox: Outbox;
  now?: () => number;
}): Checkpointer {
  const { group, dc, service, codec, outbox, now = Date.now } = opts;
  const topic = topicFor(dc, CHECKPOINT_STREAM);
  const moved = new Map<string, { topic: string; partition: number; position: Position }>();

  return {
    update(sourceTopic, partition, position) {
      moved.set(`${sourceTopic}|${partition}`, { topic: sourceTopic, partition, position });
    },
    async publish() {
      if (moved.size === 0) return;
      const entries = [...moved.values()];
      moved.clear();
      const records = await Promise.all(
        entries.map(async ({ topic: sourceTopic, partition, position }) => ({
          topic,
          message: {
            key: checkpointKey(group, sourceTopic, partition),
            value: await codec.encode(CHECKPOINT_STREAM, {
              meta: {
                id: randomUUID(),
                dt: now(),
                stream: CHECKPOINT_STREAM,
                dc,
                producer: service,
                request_id: null,
              },
              group,
              topic: sourceTopic,
              partition,
              offset: Number(position.offset),
              record_time: position.recordTime,
              event_time: position.eventTime,
            }),
          },
        })),
      );
      try {
        await outbox.send(records);
      } catch (error) {
        // Published again next time, unless a newer position of the same partition came meanwhile.
        for (const entry of entries) {
          const key = `${entry.topic}|${entry.partition}`;
          if (!moved.has(key)) moved.set(key, entry);
        }
        throw error;
      }
    },
  };
}
