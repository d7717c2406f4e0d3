/**
 * What the Kafka runtime needs from the schema layer: turn a stream's record into registry-framed
 * Avro bytes and back. libs/schemas implements it; the runtime only depends on this shape.
 */
export interface RecordCodec {
  encode(stream: string, value: unknown): Promise<Buffer>;
  decode(stream: string, bytes: Buffer): Promise<unknown>;
}

/** How a record that cannot be decoded is classified in its dead-letter headers. */
export function decodeFailureKind(error: unknown): string | null {
  const kind = (error as { kind?: unknown } | null)?.kind;
  return typeof kind === 'string' ? kind : null;
}
