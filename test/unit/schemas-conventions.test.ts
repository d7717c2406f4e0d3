/**
 * The rules every stream schema follows (schemas/README-level conventions, enforced here):
 * meta first, a doc on every field, optional fields as ["null", X] with a null default, and
 * enums either with a default symbol or with a doc saying why not.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type AvroSchema, type AvroSchemaObject, allStreamSchemas } from '../../libs/schemas/catalog.ts';

interface Found {
  where: string;
  problem: string;
}

function check(schema: AvroSchema, where: string, out: Found[]): void {
  if (typeof schema === 'string') return;
  if (Array.isArray(schema)) {
    if (schema.length !== 2 || schema[0] !== 'null')
      out.push({ where, problem: 'union other than ["null", X]' });
    for (const branch of schema) check(branch, where, out);
    return;
  }
  if (schema.type === 'record') {
    for (const field of schema.fields as {
      name: string;
      type: AvroSchema;
      doc?: string;
      default?: unknown;
    }[]) {
      const at = `${where}.${field.name}`;
      if (!field.doc) out.push({ where: at, problem: 'no doc' });
      if (Array.isArray(field.type) && field.default !== null) {
        out.push({ where: at, problem: 'nullable field without default null' });
      }
      check(field.type, at, out);
    }
  } else if (schema.type === 'enum') {
    if (schema.default === undefined && !/without a default/i.test(String(schema.doc))) {
      out.push({ where, problem: `enum ${String(schema.name)} has no default symbol and no doc saying why` });
    }
  } else if (schema.type === 'array') {
    check(schema.items as AvroSchema, `${where}[]`, out);
  } else if (schema.type === 'map') {
    check(schema.values as AvroSchema, `${where}{}`, out);
  }
}

test('every stream schema follows the conventions', () => {
  const found: Found[] = [];
  for (const { stream, json } of allStreamSchemas()) check(json, stream, found);
  assert.deepEqual(found, []);
});

test('every stream record is named after its stream and starts with meta', () => {
  for (const { stream, json } of allStreamSchemas()) {
    const record = json as AvroSchemaObject;
    const fields = record.fields as { name: string; type: AvroSchema }[];
    const expected = stream
      .split(/[.-]/)
      .map((part) => part[0]!.toUpperCase() + part.slice(1))
      .join('');
    assert.equal(record.name, expected, stream);
    assert.equal(record.namespace, 'org.tidings', stream);
    assert.equal(fields[0]?.name, 'meta', stream);
    const meta = fields[0]?.type;
    assert.ok(meta === 'org.tidings.Meta' || (meta as { name?: string }).name === 'Meta', stream);
  }
});
