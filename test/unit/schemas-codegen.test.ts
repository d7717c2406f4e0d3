import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { generateTypes } from '../../libs/schemas/codegen.ts';

const root = join(import.meta.dirname, '..', '..');

test('libs/schemas/types.generated.ts is what the schemas generate (codegen --check)', () => {
  const run = spawnSync(process.execPath, ['libs/schemas/codegen.ts', '--check'], {
    cwd: root,
    encoding: 'utf8',
  });
  assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
});

test('Avro types map to TypeScript types, with an input form where fields have defaults', () => {
  const out = generateTypes([
    {
      stream: 'x.thing',
      json: {
        type: 'record',
        name: 'XThing',
        namespace: 'org.t',
        doc: 'A thing.',
        fields: [
          { name: 'meta', type: { type: 'record', name: 'Meta', fields: [{ name: 'dt', type: 'long' }] } },
          { name: 'when', type: ['null', { type: 'long', logicalType: 'timestamp-millis' }], default: null },
          { name: 'tags', type: { type: 'map', values: 'string' }, doc: 'Tags.' },
          {
            name: 'kinds',
            type: { type: 'array', items: ['null', { type: 'enum', name: 'Kind', symbols: ['a', 'b'] }] },
          },
          { name: 'blob', type: 'bytes' },
          { name: 'n', type: 'int', default: 3 },
        ],
      },
    },
  ]);
  for (const line of [
    '/** A thing. */',
    'export interface XThing {',
    '  when: number | null;',
    '  /** Tags. */',
    '  tags: Record<string, string>;',
    '  kinds: (Kind | null)[];',
    '  blob: Buffer;',
    '  n: number;',
    "export type Kind = 'a' | 'b';",
    'export interface XThingInput {',
    '  when?: number | null;',
    '  n?: number;',
    "  'x.thing': XThing;",
    "  'x.thing': XThingInput;",
  ]) {
    assert.ok(out.split('\n').includes(line), `missing line: ${line}`);
  }
  assert.doesNotMatch(out, /MetaInput/, 'a record without defaults has no separate input form');
});

test('unions other than ["null", X] are refused', () => {
  assert.throws(
    () =>
      generateTypes([
        {
          stream: 's',
          json: { type: 'record', name: 'S', fields: [{ name: 'v', type: ['string', 'int'] }] },
        },
      ]),
    /only \["null", X\] is allowed/,
  );
});
