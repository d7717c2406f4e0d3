/**
 * Group commit for produced records. Each processed record hands its outputs (channel records,
 * retries, dead letters) to the outbox and waits until Kafka acknowledged them with acks=all;
 * the outbox sends what accumulated in one request. One round trip per record would cap a
 * consumer at a few hundred records a second; one per batch keeps it near the raw pipe.
 *
 * One request is in flight at a time, so a record is never acknowledged before an earlier one.
 * What arrives meanwhile waits and goes out in the next request, as much as fits: the slower
 * Kafka answers, the fuller the requests, instead of a queue of small ones.
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
  /** Sends what is waiting now instead of after the linger time; resolves once it is all sent. */
  flush(): Promise<void>;
}

export interface OutboxOptions {
  /** Send as soon as this many records wait; also the most records in one request. */
  maxRecords?: number;
  /**
   * The most key and value bytes in one request. Kept under the broker's message.max.bytes
   * (1 MiB by default), which bounds each partition's batch in a request.
   */
  maxBytes?: number;
  /** Otherwise wait at most this long for more records to join a request. */
  lingerMs?: number;
}

interface Pending {
  records: readonly OutboundRecord[];
  bytes: number;
  resolve: () => void;
  reject: (error: unknown) => void;
}

const sizeOf = (data: Message['key'] | Message['value']): number =>
  data == null ? 0 : typeof data === 'string' ? Buffer.byteLength(data) : data.length;

export function createOutbox(
  producer: Producer,
  // KafkaJS groups a request's records per partition by copying the partition's array for every
  // record, which is quadratic in the request's size: requests stay at about a thousand records.
  { maxRecords = 1_000, maxBytes = 768 * 1024, lingerMs = 5 }: OutboxOptions = {},
): Outbox {
  const waiting: Pending[] = [];
  let waitingCount = 0;
  let timer: NodeJS.Timeout | null = null;
  let pumping = false;
  let drained: Promise<void> = Promise.resolve();

  /** The oldest waiting sends, as many as fit one request (always at least one). */
  const takeRequest = (): Pending[] => {
    let records = 0;
    let bytes = 0;
    let n = 0;
    while (n < waiting.length) {
      const next = waiting[n]!;
      if (n > 0 && (records + next.records.length > maxRecords || bytes + next.bytes > maxBytes)) break;
      records += next.records.length;
      bytes += next.bytes;
      n++;
    }
    waitingCount -= records;
    return waiting.splice(0, n);
  };

  // The flag drops in the same turn as the last look at `waiting`, so no send is left behind.
  const pump = async () => {
    try {
      while (waiting.length > 0) {
        const group = takeRequest();
        try {
          await producer.sendBatch({ ...DURABLE_SEND, topicMessages: byTopic(group) });
          for (const p of group) p.resolve();
        } catch (error) {
          for (const p of group) p.reject(error);
        }
      }
    } finally {
      pumping = false;
    }
  };

  const sendWaiting = (): Promise<void> => {
    if (timer) {
      clearTimeout(timer);
      timer = null;
    }
    if (!pumping && waiting.length > 0) {
      pumping = true;
      drained = pump();
    }
    return drained;
  };

  return {
    send(records) {
      if (records.length === 0) return Promise.resolve();
      // One record's outputs may be larger than a request may be (an event fanning out to ten
      // thousand people): they go in consecutive requests, durable once the last is acknowledged.
      const parts = splitToFit(records, maxRecords, maxBytes);
      const durable = Promise.all(
        parts.map(
          ({ records: part, bytes }) =>
            new Promise<void>((resolve, reject) => {
              waiting.push({ records: part, bytes, resolve, reject });
              waitingCount += part.length;
            }),
        ),
      ).then(() => undefined);
      // While a request is in flight, what waits joins the next one when it returns.
      if (!pumping) {
        if (waitingCount >= maxRecords) void sendWaiting();
        else if (!timer) timer = setTimeout(() => void sendWaiting(), lingerMs);
      }
      return durable;
    },
    flush: sendWaiting,
  };
}

/** Consecutive slices of `records`, each within a request's record and byte limits (at least one record). */
function splitToFit(
  records: readonly OutboundRecord[],
  maxRecords: number,
  maxBytes: number,
): { records: readonly OutboundRecord[]; bytes: number }[] {
  const parts: { records: OutboundRecord[]; bytes: number }[] = [];
  let current: { records: OutboundRecord[]; bytes: number } = { records: [], bytes: 0 };
  for (const record of records) {
    const size = sizeOf(record.message.key) + sizeOf(record.message.value);
    if (
      current.records.length > 0 &&
      (current.records.length >= maxRecords || current.bytes + size > maxBytes)
    ) {
      parts.push(current);
      current = { records: [], bytes: 0 };
    }
    current.records.push(record);
    current.bytes += size;
  }
  parts.push(current);
  return parts;
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
