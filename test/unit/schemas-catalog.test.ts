import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import avro from 'avsc';
import {
  type AvroSchemaObject,
  allStreamSchemas,
  inlineSharedTypes,
  loadCatalog,
  SCHEMAS_DIR,
  STREAMS,
  streamSchema,
} from '../../libs/schemas/catalog.ts';

const agent: AvroSchemaObject = {
  type: 'record',
  name: 'Agent',
  namespace: 'org.t',
  fields: [{ name: 'id', type: 'string' }],
};
const note: AvroSchemaObject = {
  type: 'record',
  name: 'Note',
  namespace: 'org.t',
  fields: [{ name: 'by', type: ['null', 'org.t.Agent'], default: null }],
};
const shared = new Map([
  ['org.t.Agent', agent],
  ['org.t.Note', note],
]);

describe('inlining shared types', () => {
  test('the first use defines a shared type, later uses refer to it by full name', () => {
    const out = inlineSharedTypes(
      {
        type: 'record',
        name: 'Top',
        namespace: 'org.t',
        fields: [
          { name: 'a', type: 'org.t.Agent' },
          { name: 'b', type: { type: 'array', items: 'Agent' } },
        ],
      },
      shared,
    ) as AvroSchemaObject;
    const fields = out.fields as { name: string; type: unknown }[];
    assert.deepEqual(fields[0]!.type, agent);
    assert.deepEqual(fields[1]!.type, { type: 'array', items: 'org.t.Agent' });
  });

  test('shared types that use other shared types are inlined recursively, in parse order', () => {
    const out = inlineSharedTypes(
      {
        type: 'record',
        name: 'Top',
        namespace: 'org.t',
        fields: [
          { name: 'n', type: 'org.t.Note' },
          { name: 'a', type: 'org.t.Agent' },
        ],
      },
      shared,
    );
    const type = avro.Type.forSchema(out as avro.Schema);
    assert.ok(type.isValid({ n: { by: { id: 'x' } }, a: { id: 'y' } }));
    const fields = (out as AvroSchemaObject).fields as { name: string; type: unknown }[];
    assert.equal(fields[1]!.type, 'org.t.Agent', 'Agent was defined inside Note already');
  });

  test('an unknown type name is an error naming it', () => {
    assert.throws(
      () =>
        inlineSharedTypes({ type: 'record', name: 'T', fields: [{ name: 'x', type: 'org.t.Nope' }] }, shared),
      /unknown type "org.t.Nope"/,
    );
  });

  test('a type defined twice is an error', () => {
    assert.throws(
      () =>
        inlineSharedTypes(
          {
            type: 'record',
            name: 'T',
            namespace: 'org.t',
            fields: [
              { name: 'x', type: 'org.t.Agent' },
              { name: 'y', type: agent },
            ],
          },
          shared,
        ),
      /org\.t\.Agent is defined twice/,
    );
  });
});

describe('stream catalog', () => {
  test('every stream has a self-contained schema registered under <stream>-value', () => {
    for (const { stream, subject, text } of allStreamSchemas()) {
      assert.equal(subject, `${stream}-value`);
      // Parsing the text alone (no shared files, no registry of names) must work.
      assert.doesNotThrow(() => avro.Type.forSchema(JSON.parse(text)), stream);
    }
  });

  test('shared types, and the shared types they use, are inlined once each', () => {
    const { text } = streamSchema('notify.web');
    for (const name of ['Meta', 'Notification', 'Agent']) {
      assert.equal(text.match(new RegExp(`"name":"${name}"`, 'g'))?.length, 1, name);
    }
  });

  test('decoded records are plain objects', () => {
    const { type } = streamSchema('notify.checkpoint');
    const value = {
      meta: { id: 'i', dt: 1, stream: 'notify.checkpoint', dc: 'eqiad', producer: 'p', request_id: null },
      group: 'g',
      topic: 'eqiad.notify.event',
      partition: 0,
      offset: 5,
      record_time: 2,
      event_time: null,
      caught_up_to: null,
    };
    assert.deepStrictEqual(type.fromBuffer(type.toBuffer(value)), value);
  });

  test('a missing stream file and a file for an unknown stream are both errors', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tidings-schemas-'));
    try {
      cpSync(SCHEMAS_DIR, dir, { recursive: true });
      writeFileSync(join(dir, 'notify.sms.avsc'), JSON.stringify({ type: 'record', name: 'S', fields: [] }));
      assert.throws(() => loadCatalog(dir), /unknown streams: notify\.sms\.avsc/);
      unlinkSync(join(dir, 'notify.sms.avsc'));
      unlinkSync(join(dir, `${STREAMS[0]}.avsc`));
      assert.throws(() => loadCatalog(dir), /schemas\/notify\.event\.avsc is missing/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
