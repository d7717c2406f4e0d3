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

/** One request's records, and the promise every send that put records in it waits on. */
interface Request {
  records: OutboundRecord[];
  bytes: number;
  durable: Promise<void>;
  resolve: () => void;
  reject: (error: unknown) => void;
}

const sizeOf = (data: Message['key'] | Message['value']): number =>
  data == null ? 0 : typeof data === 'string' ? Buffer.byteLength(data) : data.length;

const newRequest = (): Request => {
  const { promise, resolve, reject } = Promise.withResolvers<void>();
  // A send that nobody awaits (a failed batch left its records) must not be an unhandled rejection.
  promise.catch(() => undefined);
  return { records: [], bytes: 0, durable: promise, resolve, reject };
};

export function createOutbox(
  producer: Producer,
  // KafkaJS groups a request's records per partition by copying the partition's array for every
  // record, which is quadratic in the request's size: requests stay at about a thousand records.
  { maxRecords = 1_000, maxBytes = 768 * 1024, lingerMs = 5 }: OutboxOptions = {},
): Outbox {
  // The requests not sent yet, oldest first; the last one takes records until it is full. Every
  // send joins the open request and shares its promise: one promise per request, not per record
  // (the outbox runs once per consumed record).
  const queue: Request[] = [];
  let timer: NodeJS.Timeout | null = null;
  let pumping = false;
  let drained: Promise<void> = Promise.resolve();

  /** The request that `records` (`bytes` of them) join: the open one if they fit, else a new one. */
  const requestFor = (count: number, bytes: number): Request => {
    const open = queue[queue.length - 1];
    if (
      open &&
      (open.records.length === 0 ||
        (open.records.length + count <= maxRecords && open.bytes + bytes <= maxBytes))
    )
      return open;
    const request = newRequest();
    queue.push(request);
    return request;
  };

  // The flag drops in the same turn as the last look at the queue, so no send is left behind.
  const pump = async () => {
    try {
      while (queue.length > 0) {
        const request = queue.shift()!;
        try {
          await producer.sendBatch({ ...DURABLE_SEND, topicMessages: byTopic(request.records) });
          request.resolve();
        } catch (error) {
          request.reject(error);
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
    if (!pumping && queue.length > 0) {
      pumping = true;
      drained = pump();
    }
    return drained;
  };

  const join = (records: readonly OutboundRecord[], bytes: number): Promise<void> => {
    const request = requestFor(records.length, bytes);
    for (const record of records) request.records.push(record);
    request.bytes += bytes;
    return request.durable;
  };

  return {
    send(records) {
      if (records.length === 0) return Promise.resolve();
      let bytes = 0;
      for (const { message } of records) bytes += sizeOf(message.key) + sizeOf(message.value);
      // One record's outputs may be larger than a request may be (an event fanning out to ten
      // thousand people): they go in consecutive requests, durable once every one is acknowledged.
      const durable =
        records.length <= maxRecords && bytes <= maxBytes
          ? join(records, bytes)
          : Promise.all(
              splitToFit(records, maxRecords, maxBytes).map((part) => join(part.records, part.bytes)),
            ).then(() => undefined);
      // While a request is in flight, what waits joins the next one when it returns.
      if (!pumping) {
        if (queue.length > 1 || queue[0]!.records.length >= maxRecords) void sendWaiting();
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

function byTopic(records: readonly OutboundRecord[]): TopicMessages[] {
  const topics = new Map<string, Message[]>();
  for (const { topic, message } of records) {
    let messages = topics.get(topic);
    if (!messages) {
      messages = [];
      topics.set(topic, messages);
    }
    messages.push(message);
  }
  return [...topics].map(([topic, messages]) => ({ topic, messages }));
}
