/**
 * What the Kafka runtime needs from the schema layer: turn a stream's record into registry-framed
 * Avro bytes and back. libs/schemas/serde.ts implements it; tests may pass a fake.
 */
import type { StreamName } from '../schemas/catalog.ts';
import type { StreamInputs, StreamRecords } from '../schemas/types.generated.ts';

export interface RecordCodec {
  encode<S extends StreamName>(stream: S, value: StreamInputs[S]): Promise<Buffer>;
  decode<S extends StreamName>(stream: S, bytes: Buffer): Promise<StreamRecords[S]>;
}

/**
 * How a record that cannot be decoded is classified in its dead-letter headers; null for an
 * error that is not the record's fault (a registry that is down).
 */
export function decodeFailureKind(error: unknown): string | null {
  const kind = (error as { kind?: unknown } | null)?.kind;
  return typeof kind === 'string' ? kind : null;
}
