/**
 * The streams Tidings knows and their Avro schemas. schemas/<stream>.avsc refers to shared named
 * types (schemas/shared/*.avsc) by full name; loading inlines each shared type where it is first
 * used, so the schema registered for a subject is self-contained (no registry references, which
 * not every registry client resolves the same way).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import avro from 'avsc';

export const STREAMS = [
  'notify.event',
  'notify.user',
  'notify.preference-change',
  'notify.push-subscription',
  'notify.web',
  'notify.email',
  'notify.push',
  'notify.email-send',
  'notify.bounce',
  'notify.suppression',
  'notify.checkpoint',
  'notify.inbox-state',
  'notify.status',
  'notify.erasure',
] as const;

export type StreamName = (typeof STREAMS)[number];

export const SCHEMAS_DIR = join(import.meta.dirname, '..', '..', 'schemas');

export interface StreamSchema {
  stream: StreamName;
  /** Registry subject; the same in every datacenter. */
  subject: string;
  /** The self-contained schema, as registered. */
  json: AvroSchema;
  /** Exactly the text registered for the subject (JSON of `json`). */
  text: string;
  type: avro.Type;
}

/** A JSON Avro schema: a type name, a union (array) or a schema object. */
export type AvroSchema = string | AvroSchema[] | AvroSchemaObject;
export interface AvroSchemaObject {
  type: AvroSchema;
  [attribute: string]: unknown;
}

export function isStream(name: string): name is StreamName {
  return (STREAMS as readonly string[]).includes(name);
}

export function subjectFor(stream: string): string {
  return `${stream}-value`;
}

let cached: Map<StreamName, StreamSchema> | undefined;

export function streamSchema(stream: StreamName): StreamSchema {
  cached ??= loadCatalog(SCHEMAS_DIR);
  const entry = cached.get(stream);
  if (!entry) throw new Error(`unknown stream "${stream}"; known: ${STREAMS.join(', ')}`);
  return entry;
}

export function allStreamSchemas(): StreamSchema[] {
  return STREAMS.map(streamSchema);
}

/** Reads every stream schema under `dir`; fails on a missing, unexpected or unresolvable file. */
export function loadCatalog(dir: string): Map<StreamName, StreamSchema> {
  const shared = new Map<string, AvroSchemaObject>();
  for (const file of avscFiles(join(dir, 'shared'))) {
    const schema = readSchema(join(dir, 'shared', file));
    const name = definedName(schema, undefined);
    if (!name) throw new Error(`schemas/shared/${file} must define one named type (record or enum)`);
    if (shared.has(name)) throw new Error(`schemas/shared/${file} defines ${name} a second time`);
    shared.set(name, schema);
  }
  const files = new Set(avscFiles(dir));
  const catalog = new Map<StreamName, StreamSchema>();
  for (const stream of STREAMS) {
    const file = `${stream}.avsc`;
    if (!files.delete(file)) throw new Error(`schemas/${file} is missing`);
    let json: AvroSchema;
    try {
      json = inlineSharedTypes(readSchema(join(dir, file)), shared);
    } catch (error) {
      throw new Error(`schemas/${file}: ${(error as Error).message}`);
    }
    catalog.set(stream, {
      stream,
      subject: subjectFor(stream),
      json,
      text: JSON.stringify(json),
      type: avroType(json),
    });
  }
  if (files.size > 0) {
    throw new Error(
      `schemas/ holds files for unknown streams: ${[...files].join(', ')} (add them to STREAMS)`,
    );
  }
  return catalog;
}

/**
 * The Avro type we read and write with. Records decode into plain objects: avsc builds each
 * record through a generated constructor, and pointing its prototype at Object.prototype makes a
 * decoded value indistinguishable from the literal a producer wrote (deepStrictEqual, spread and
 * structuredClone all behave), at no per-record cost.
 */
export function avroType(schema: AvroSchema): avro.Type {
  const registry: Record<string, avro.Type> = {};
  const type = avro.Type.forSchema(schema as avro.Schema, { omitRecordMethods: true, registry });
  for (const named of Object.values(registry)) {
    if (named instanceof avro.types.RecordType) named.recordConstructor.prototype = Object.prototype;
  }
  return type;
}

const PRIMITIVES = new Set(['null', 'boolean', 'int', 'long', 'float', 'double', 'bytes', 'string']);
const NAMED = new Set(['record', 'error', 'enum', 'fixed']);

/**
 * Replaces the first reference to each shared type by its definition (recursively), leaving
 * later references as full names, in the order Avro parses a schema: depth first, fields in order.
 */
export function inlineSharedTypes(
  schema: AvroSchema,
  shared: ReadonlyMap<string, AvroSchemaObject>,
): AvroSchema {
  const defined = new Set<string>();

  const visit = (node: AvroSchema, namespace: string | undefined): AvroSchema => {
    if (typeof node === 'string') {
      if (PRIMITIVES.has(node)) return node;
      const name = qualify(node, namespace);
      if (defined.has(name)) return name;
      const definition = shared.get(name);
      if (!definition) throw new Error(`unknown type "${node}" (resolved as ${name})`);
      return visit(structuredClone(definition), undefined);
    }
    if (Array.isArray(node)) return node.map((branch) => visit(branch, namespace));

    const name = definedName(node, namespace);
    if (name) {
      if (defined.has(name)) throw new Error(`type ${name} is defined twice`);
      defined.add(name);
    }
    const inner = name ? namespaceOf(name) : namespace;
    const out: AvroSchemaObject = { ...node };
    if (node.type === 'record' || node.type === 'error') {
      const fields = node.fields as { name: string; type: AvroSchema }[];
      out.fields = fields.map((field) => ({ ...field, type: visit(field.type, inner) }));
    } else if (node.type === 'array') {
      out.items = visit(node.items as AvroSchema, namespace);
    } else if (node.type === 'map') {
      out.values = visit(node.values as AvroSchema, namespace);
    } else if (!NAMED.has(node.type as string)) {
      out.type = visit(node.type, namespace);
    }
    return out;
  };

  return visit(schema, undefined);
}

function definedName(node: AvroSchema, namespace: string | undefined): string | undefined {
  if (typeof node !== 'object' || Array.isArray(node) || !NAMED.has(node.type as string)) return undefined;
  const name = node.name as string;
  if (name.includes('.')) return name;
  const ns = (node.namespace as string | undefined) ?? namespace;
  return ns ? `${ns}.${name}` : name;
}

function qualify(name: string, namespace: string | undefined): string {
  return name.includes('.') || !namespace ? name : `${namespace}.${name}`;
}

function namespaceOf(fullName: string): string | undefined {
  const dot = fullName.lastIndexOf('.');
  return dot > 0 ? fullName.slice(0, dot) : undefined;
}

function avscFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.avsc'))
    .sort();
}

function readSchema(path: string): AvroSchemaObject {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as AvroSchemaObject;
  } catch (error) {
    throw new Error(`cannot read schema ${path}: ${(error as Error).message}`);
  }
}
