/**
 * What the Kafka runtime needs from the schema layer: turn a stream's record into registry-framed
 * Avro bytes and back. libs/schemas/serde.ts implements it; tests may pass a fake.
 */
import type { StreamName } from '../schemas/catalog.ts';
import type { StreamInputs, StreamRecords } from '../schemas/types.generated.ts';

export interface RecordCodec {
  encode<S extends StreamName>(stream: S, value: StreamInputs[S]): Promise<Buffer>;
  decode<S extends StreamName>(stream: S, bytes: Buffer): Promise<StreamRecords[S]>;
  /**
   * As encode and decode, at once, once the schemas they need are known: undefined until then
   * (the caller falls back to the promise). The runtime calls them once per record, where a
   * promise and a turn of the event loop each cost more than the Avro work of a small record.
   */
  encodeSync?<S extends StreamName>(stream: S, value: StreamInputs[S]): Buffer | undefined;
  decodeSync?<S extends StreamName>(stream: S, bytes: Buffer): StreamRecords[S] | undefined;
}

/**
 * How a record that cannot be decoded is classified in its dead-letter headers; null for an
 * error that is not the record's fault (a registry that is down).
 */
export function decodeFailureKind(error: unknown): string | null {
  const kind = (error as { kind?: unknown } | null)?.kind;
  return typeof kind === 'string' ? kind : null;
}
