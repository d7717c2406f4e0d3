/**
 * Group commit for produced records. Each processed record hands its outputs (channel records,
 * retries, dead letters) to the outbox and waits until Kafka acknowledged them with acks=all;
 * the outbox sends what accumulated in one request. One round trip per record would cap a
 * consumer at a few hundred records a second; one per batch keeps it near the raw pipe.
 */
import type { Message, Producer, TopicMessages } from 'kafkajs';
import { DURABLE_SEND } from './client.ts';

export interface OutboundRecord {
  topic: string;
  message: Message;
}

export interface Outbox {
  /** Resolves once every record is durable in Kafka; rejects if the send failed. */
  send(records: readonly OutboundRecord[]): Promise<void>;
  /** Sends what is waiting now instead of after the linger time. */
  flush(): Promise<void>;
}

export interface OutboxOptions {
  /** Send as soon as this many records wait. */
  maxRecords?: number;
  /** Otherwise wait at most this long for more records to join a request. */
  lingerMs?: number;
}

interface Pending {
  records: readonly OutboundRecord[];
  resolve: () => void;
  reject: (error: unknown) => void;
}

export function createOutbox(
  producer: Producer,
  { maxRecords = 500, lingerMs = 5 }: OutboxOptions = {},
): Outbox {
  let waiting: Pending[] = [];
  let waitingCount = 0;
  let timer: NodeJS.Timeout | null = null;
  let sending: Promise<void> = Promise.resolve();

  const sendWaiting = (): Promise<void> => {
    if (timer) {
      clearTimeout(timer);
      timer = null;
    }
    if (waiting.length === 0) return sending;
    const group = waiting;
    waiting = [];
    waitingCount = 0;
    // Requests go out one after another so a record is never acknowledged before an earlier one.
    sending = sending.then(async () => {
      try {
        await producer.sendBatch({ ...DURABLE_SEND, topicMessages: byTopic(group) });
        for (const p of group) p.resolve();
      } catch (error) {
        for (const p of group) p.reject(error);
      }
    });
    return sending;
  };

  return {
    send(records) {
      if (records.length === 0) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        waiting.push({ records, resolve, reject });
        waitingCount += records.length;
        if (waitingCount >= maxRecords) void sendWaiting();
        else if (!timer) timer = setTimeout(() => void sendWaiting(), lingerMs);
      });
    },
    flush: sendWaiting,
  };
}

function byTopic(group: readonly Pending[]): TopicMessages[] {
  const topics = new Map<string, Message[]>();
  for (const { records } of group) {
    for (const { topic, message } of records) {
      let messages = topics.get(topic);
      if (!messages) {
        messages = [];
        topics.set(topic, messages);
      }
      messages.push(message);
    }
  }
  return [...topics].map(([topic, messages]) => ({ topic, messages }));
}
