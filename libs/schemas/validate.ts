/**
 * Says what is wrong with a record, field by field, in words a publisher can act on:
 * "notification.recipient_id: expected string, got number", "recipients[2]: ...". The same
 * rules decide what the serde refuses to encode: every type error, every field the schema does
 * not declare (a misspelt optional field would otherwise vanish silently), and records too big
 * for Kafka.
 */
import avro from 'avsc';
import { type StreamName, streamSchema } from './catalog.ts';

/** Kafka's default max.message.bytes is about 1 MiB; an encoded record must fit with room for the rest of the batch. */
export const DEFAULT_MAX_RECORD_BYTES = 1024 * 1024;

export interface ValidateOptions {
  /** Largest encoded record accepted, in bytes. */
  maxBytes?: number;
}

/** Every problem with `value` as a record of `stream`; empty if it can be published. */
export function validateRecord(stream: StreamName, value: unknown, options: ValidateOptions = {}): string[] {
  const { type } = streamSchema(stream);
  const problems = recordProblems(type, value);
  if (problems.length > 0) return problems;
  const tooBig = sizeProblem(type.toBuffer(value).length, options.maxBytes ?? DEFAULT_MAX_RECORD_BYTES);
  return tooBig ? [tooBig] : [];
}

/** Type errors and undeclared fields, each naming its field path. */
export function recordProblems(type: avro.Type, value: unknown): string[] {
  const problems: string[] = [];
  type.isValid(value, {
    errorHook: (path, val, at) => problems.push(`${formatPath(type, path)}: ${describeMismatch(at, val)}`),
  });
  undeclaredFields(type, value, '', problems);
  return problems;
}

export function sizeProblem(bytes: number, maxBytes: number): string | null {
  return bytes > maxBytes ? `record is ${bytes} bytes encoded, over the limit of ${maxBytes} bytes` : null;
}

function formatPath(root: avro.Type, path: readonly string[]): string {
  let type: avro.Type | undefined = root;
  let out = '';
  for (const step of path) {
    type = type && nonNull(type);
    if (type instanceof avro.types.RecordType) {
      out += out ? `.${step}` : step;
      type = type.field(step)?.type;
    } else if (type instanceof avro.types.ArrayType) {
      out += `[${step}]`;
      type = type.itemsType;
    } else if (type instanceof avro.types.MapType) {
      out += `[${JSON.stringify(step)}]`;
      type = type.valuesType as avro.Type;
    } else {
      out += `.${step}`;
    }
  }
  return out || '(record)';
}

/** Our unions are all ["null", X]: the type a non-null value must have. */
function nonNull(type: avro.Type): avro.Type {
  if (type instanceof avro.types.UnwrappedUnionType) {
    return type.types.find((t) => !(t instanceof avro.types.NullType)) ?? type;
  }
  return type;
}

function describeMismatch(type: avro.Type, value: unknown): string {
  if (value === undefined) return `missing, expected ${expected(type)}`;
  return `expected ${expected(type)}, got ${describe(value)}`;
}

function expected(type: avro.Type): string {
  if (type instanceof avro.types.UnwrappedUnionType) return type.types.map(expected).join(' or ');
  if (type instanceof avro.types.EnumType)
    return `one of ${type.symbols.map((s) => JSON.stringify(s)).join(' | ')}`;
  if (type instanceof avro.types.RecordType) return `${type.name} record (object)`;
  if (type instanceof avro.types.ArrayType) return `array of ${expected(type.itemsType)}`;
  if (type instanceof avro.types.MapType) return `map (object) of ${expected(type.valuesType as avro.Type)}`;
  if (type instanceof avro.types.IntType) return 'int (32-bit integer)';
  if (type instanceof avro.types.LongType) return 'long (safe integer)';
  if (type instanceof avro.types.FloatType || type instanceof avro.types.DoubleType) return 'number';
  if (type instanceof avro.types.BytesType || type instanceof avro.types.FixedType) return 'bytes (Buffer)';
  return type.typeName;
}

/**
 * What was found instead. Numbers and booleans are shown because their value explains the
 * error (1.5 is no long); strings are not, as they may hold addresses and other personal data.
 */
function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (Buffer.isBuffer(value)) return 'Buffer';
  if (typeof value === 'number' || typeof value === 'boolean') return `${typeof value} ${value}`;
  return typeof value;
}

function undeclaredFields(type: avro.Type, value: unknown, path: string, problems: string[]): void {
  if (value === null || typeof value !== 'object') return;
  const t = nonNull(type);
  if (t instanceof avro.types.RecordType) {
    if (Array.isArray(value) || Buffer.isBuffer(value)) return;
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      const field = t.field(key);
      const at = path ? `${path}.${key}` : key;
      if (!field) problems.push(`${at}: unknown field (${t.name} has no such field)`);
      else undeclaredFields(field.type, record[key], at, problems);
    }
  } else if (t instanceof avro.types.ArrayType && Array.isArray(value)) {
    value.forEach((item, i) => {
      undeclaredFields(t.itemsType, item, `${path}[${i}]`, problems);
    });
  } else if (t instanceof avro.types.MapType) {
    for (const [key, item] of Object.entries(value)) {
      undeclaredFields(t.valuesType as avro.Type, item, `${path}[${JSON.stringify(key)}]`, problems);
    }
  }
}
