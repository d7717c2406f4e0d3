/**
 * A record as tail and dlq show print it: where it is, when it was written, its key and headers
 * as text, and its value decoded, or the reason it does not decode.
 */
import { headerString } from '../libs/kafka/record-headers.ts';
import type { ReadRecord } from '../libs/kafka/topic-reader.ts';
import type { StreamName } from '../libs/schemas/catalog.ts';
import type { Serde } from '../libs/schemas/serde.ts';

export async function decodeRecord(
  serde: Serde,
  stream: StreamName,
  { topic, partition, message }: ReadRecord,
) {
  const base = {
    topic,
    partition,
    offset: Number(message.offset),
    timestamp: new Date(Number(message.timestamp)).toISOString(),
    key: message.key?.toString('utf8') ?? null,
    headers: Object.fromEntries(
      Object.keys(message.headers ?? {}).map((h) => [h, headerString(message.headers, h)]),
    ),
  };
  if (message.value === null) return { ...base, value: null, error: null };
  try {
    return { ...base, value: await serde.decode(stream, message.value), error: null };
  } catch (error) {
    return { ...base, value: null, error: (error as Error).message };
  }
}
