/**
 * Publishes, per consumer group and partition, how far the group has durably got: the committed
 * offset, the Kafka timestamp of the last record below it and that record's event time, and, when
 * the group was at the log end, the time it was (caught-up-probe.ts). After a datacenter loss the
 * mirrored copy of this stream is all the surviving side knows about the lost consumers, and
 * `tidings failover` repositions groups by these timestamps.
 */
import { randomUUID } from 'node:crypto';
import type { Outbox } from './outbox.ts';
import type { RecordCodec } from './record-codec.ts';
import { topicFor } from './topics.ts';

export const CHECKPOINT_STREAM = 'notify.checkpoint';

export interface Position {
  offset: bigint;
  recordTime: number | null;
  eventTime: number | null;
  /** The wall time the group was seen at the log end; no record appended before it is unprocessed. */
  caughtUpTo?: number | null;
}

export interface Checkpointer {
  update(topic: string, partition: number, position: Position): void;
  /**
   * The group was at the log end (`offset`) at `at`. Keeps the last record time this publisher saw,
   * and is replaced by the next update: a record processed later says more than an old probe.
   */
  caughtUp(topic: string, partition: number, offset: bigint, at: number): void;
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
  const lastRecord = new Map<string, Pick<Position, 'recordTime' | 'eventTime'>>();

  return {
    update(sourceTopic, partition, position) {
      const key = `${sourceTopic}|${partition}`;
      moved.set(key, { topic: sourceTopic, partition, position });
      lastRecord.set(key, { recordTime: position.recordTime, eventTime: position.eventTime });
    },
    caughtUp(sourceTopic, partition, offset, at) {
      const key = `${sourceTopic}|${partition}`;
      const last = lastRecord.get(key) ?? { recordTime: null, eventTime: null };
      moved.set(key, { topic: sourceTopic, partition, position: { offset, ...last, caughtUpTo: at } });
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
              caught_up_to: position.caughtUpTo ?? null,
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
