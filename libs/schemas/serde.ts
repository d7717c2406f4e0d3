/**
 * Avro records in the Confluent wire format: a zero magic byte, the writer schema's registry id
 * (4 bytes, big-endian), then the Avro body.
 *
 * Encoding writes with our schema for the stream, under the id the registry holds for it (looked
 * up, never registered here: registration is a deploy step, `tidings schemas register`).
 * Decoding fetches the writer schema by id once and resolves it into our schema for the stream,
 * so records written with an older (or newer, compatible) schema read as the current types.
 *
 * After the first record of a stream and writer id, encode and decode are synchronous work behind
 * a cached lookup: no registry call, no schema parsing, no allocation beyond the record.
 * encodeSync and decodeSync do that work without the promise, for callers that run once per record.
 */
import type avro from 'avsc';
import { avroType, type StreamName, streamSchema } from './catalog.ts';
import { createRegistryClient, type RegistryAccess, type SchemaSource } from './registry-client.ts';
import type { StreamInputs, StreamRecords } from './types.generated.ts';
import { DEFAULT_MAX_RECORD_BYTES, recordProblems, sizeProblem } from './validate.ts';

export type SerdeErrorKind = 'malformed' | 'unknown-schema' | 'incompatible' | 'invalid';

/**
 * A record that can never be encoded or decoded as it is; retrying will not help.
 * - malformed: no magic byte, shorter than the header, or an Avro body that does not decode;
 * - unknown-schema: the registry never issued the writer schema id;
 * - incompatible: the writer schema cannot be resolved into our schema for the stream;
 * - invalid: a value to encode does not match the schema (`problems` names each field).
 * Any other error (the registry is down or answers 5xx) is transient and is not a SerdeError.
 */
export class SerdeError extends Error {
  readonly kind: SerdeErrorKind;
  readonly problems: readonly string[];
  constructor(kind: SerdeErrorKind, message: string, problems: readonly string[] = []) {
    super(message);
    this.name = 'SerdeError';
    this.kind = kind;
    this.problems = problems;
  }
}

export interface Serde {
  encode<S extends StreamName>(stream: S, value: StreamInputs[S]): Promise<Buffer>;
  decode<S extends StreamName>(stream: S, bytes: Buffer): Promise<StreamRecords[S]>;
  /** encode without a promise: undefined until our schema id for the stream is known. */
  encodeSync<S extends StreamName>(stream: S, value: StreamInputs[S]): Buffer | undefined;
  /** decode without a promise: undefined until the record's writer schema is known. */
  decodeSync<S extends StreamName>(stream: S, bytes: Buffer): StreamRecords[S] | undefined;
  /** The registry id of our schema for the stream; fails if it was never registered. */
  schemaId(stream: StreamName): Promise<number>;
}

export type SerdeOptions = (
  | { registryUrl: string; registryAccess?: RegistryAccess }
  | { registry: SchemaSource }
) & {
  /** Largest encoded record accepted; default 1 MiB. */
  maxRecordBytes?: number;
};

const MAGIC = 0;
const HEADER_BYTES = 5;

type Reader = (body: Buffer) => unknown;

export function createSerde(options: SerdeOptions): Serde {
  const registry =
    'registry' in options
      ? options.registry
      : createRegistryClient(options.registryUrl, options.registryAccess);
  const where = 'registryUrl' in options ? ` at ${options.registryUrl}` : '';
  const maxRecordBytes = options.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES;

  const ownIds = new Map<StreamName, number>();
  let scratch = Buffer.allocUnsafe(64 * 1024);
  const ownIdLookups = new Map<StreamName, Promise<number>>();
  const readers = new Map<string, Map<number, Reader>>();
  const writerLookups = new Map<number, Promise<avro.Type | null>>();

  function schemaId(stream: StreamName): Promise<number> {
    const known = ownIds.get(stream);
    if (known !== undefined) return Promise.resolve(known);
    let lookup = ownIdLookups.get(stream);
    if (!lookup) {
      const { subject, text } = streamSchema(stream);
      lookup = registry.idOf(subject, text).then((id) => {
        if (id === null) {
          throw new Error(
            `the registry${where} does not hold our schema for ${stream} under subject ${subject}: run "tidings schemas register"`,
          );
        }
        ownIds.set(stream, id);
        return id;
      });
      ownIdLookups.set(stream, lookup);
      // A failed lookup is not remembered: the next record asks again.
      lookup.catch(() => ownIdLookups.delete(stream));
    }
    return lookup;
  }

  function writerType(id: number): Promise<avro.Type | null> {
    let lookup = writerLookups.get(id);
    if (!lookup) {
      lookup = registry.schemaById(id).then((found) => {
        if (!found) return null;
        if (found.schemaType !== 'AVRO') {
          throw new SerdeError('incompatible', `schema id ${id} is a ${found.schemaType} schema, not Avro`);
        }
        try {
          return avroType(JSON.parse(found.schema));
        } catch (error) {
          throw new SerdeError(
            'incompatible',
            `schema id ${id} is not a usable Avro schema: ${(error as Error).message}`,
          );
        }
      });
      writerLookups.set(id, lookup);
      // Unknown ids and unreachable registries are asked again next time; parsed schemas are kept.
      lookup.then(
        (type) => type === null && writerLookups.delete(id),
        (error) => !(error instanceof SerdeError) && writerLookups.delete(id),
      );
    }
    return lookup;
  }

  async function reader(stream: StreamName, id: number): Promise<Reader> {
    const writer = await writerType(id);
    if (!writer) {
      throw new SerdeError('unknown-schema', `schema id ${id} is unknown to the registry${where}`);
    }
    const { type } = streamSchema(stream);
    let read: Reader;
    if (type.equals(writer)) {
      read = (body) => type.fromBuffer(body);
    } else {
      try {
        const resolver = type.createResolver(writer);
        read = (body) => type.fromBuffer(body, resolver);
      } catch (error) {
        const incompatible = new SerdeError(
          'incompatible',
          `schema id ${id} cannot be read as ${stream}: ${(error as Error).message}`,
        );
        read = () => {
          throw incompatible;
        };
      }
    }
    const byId = readers.get(stream) ?? new Map<number, Reader>();
    byId.set(id, read);
    readers.set(stream, byId);
    return read;
  }

  /** Our encoding of `value`, framed with `id` (validation and size limits included). */
  function framed(stream: StreamName, value: unknown, id: number): Buffer {
    const { type } = streamSchema(stream);
    if (!type.isValid(value, { noUndeclaredFields: true })) {
      const problems = recordProblems(type, value);
      throw new SerdeError('invalid', `invalid ${stream} record: ${problems.join('; ')}`, problems);
    }
    // The body is written into the scratch buffer and copied out once (toBuffer would allocate
    // and copy it twice); nothing awaits in between, so encodes never share the scratch.
    let end = type.encode(value, scratch, HEADER_BYTES);
    if (end < 0) {
      scratch = Buffer.allocUnsafe(2 ** Math.ceil(Math.log2(scratch.length - end)));
      end = type.encode(value, scratch, HEADER_BYTES);
    }
    const tooBig = sizeProblem(end - HEADER_BYTES, maxRecordBytes);
    if (tooBig) throw new SerdeError('invalid', `invalid ${stream} record: ${tooBig}`, [tooBig]);
    const bytes = Buffer.allocUnsafe(end);
    scratch.copy(bytes, HEADER_BYTES, HEADER_BYTES, end);
    bytes[0] = MAGIC;
    bytes.writeUInt32BE(id, 1);
    return bytes;
  }

  /** The writer schema id of `bytes`, once its header is checked. */
  function writerId(bytes: Buffer): number {
    if (bytes.length < HEADER_BYTES || bytes[0] !== MAGIC) {
      throw new SerdeError(
        'malformed',
        bytes.length < HEADER_BYTES
          ? `record of ${bytes.length} bytes is shorter than the ${HEADER_BYTES}-byte schema header`
          : `record starts with byte ${bytes[0]}, not the magic byte ${MAGIC}`,
      );
    }
    return bytes.readUInt32BE(1);
  }

  function readWith(read: Reader, bytes: Buffer, id: number): unknown {
    try {
      return read(bytes.subarray(HEADER_BYTES));
    } catch (error) {
      if (error instanceof SerdeError) throw error;
      throw new SerdeError(
        'malformed',
        `Avro body does not decode with schema id ${id}: ${(error as Error).message}`,
      );
    }
  }

  return {
    schemaId,

    async encode(stream, value) {
      // Validated and encoded before the id is looked up: an invalid record fails even while the
      // registry is unreachable.
      const known = ownIds.get(stream);
      if (known !== undefined) return framed(stream, value, known);
      const bytes = framed(stream, value, 0);
      bytes.writeUInt32BE(await schemaId(stream), 1);
      return bytes;
    },

    encodeSync(stream, value) {
      const id = ownIds.get(stream);
      return id === undefined ? undefined : framed(stream, value, id);
    },

    async decode(stream, bytes) {
      const id = writerId(bytes);
      const read = readers.get(stream)?.get(id) ?? (await reader(stream, id));
      return readWith(read, bytes, id) as StreamRecords[typeof stream];
    },

    decodeSync(stream, bytes) {
      const id = writerId(bytes);
      const read = readers.get(stream)?.get(id);
      return read === undefined ? undefined : (readWith(read, bytes, id) as StreamRecords[typeof stream]);
    },
  };
}
