import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type AvroSchemaObject, avroType, streamSchema } from '../../libs/schemas/catalog.ts';
import type { SchemaSource } from '../../libs/schemas/registry-client.ts';
import { createSerde, SerdeError } from '../../libs/schemas/serde.ts';
import type { NotifyEventInput } from '../../libs/schemas/types.generated.ts';

/** An in-memory registry: ids issued in order, same schema text under a subject keeps its id. */
function fakeRegistry() {
  const schemas = new Map<number, string>();
  const subjects = new Map<string, Map<string, number>>();
  const state = { calls: 0, down: false };
  const answer = () => {
    state.calls++;
    if (state.down) throw new Error('connect ECONNREFUSED 127.0.0.1:8081');
  };
  const source: SchemaSource = {
    async schemaById(id) {
      answer();
      const schema = schemas.get(id);
      return schema === undefined ? null : { schema, schemaType: 'AVRO' };
    },
    async idOf(subject, schema) {
      answer();
      return subjects.get(subject)?.get(schema) ?? null;
    },
  };
  return {
    source,
    state,
    register(subject: string, schema: string): number {
      const id = schemas.size + 1;
      schemas.set(id, schema);
      const versions = subjects.get(subject) ?? new Map<string, number>();
      versions.set(schema, id);
      subjects.set(subject, versions);
      return id;
    },
  };
}

function event(): NotifyEventInput {
  return {
    meta: { id: 'a5c1', dt: 1_700_000_000_000, stream: 'notify.event', dc: 'eqiad', producer: 'test' },
    event_id: 'ev-1',
    type: 'edit-user-talk',
    category: 'edit-user-talk',
    recipients: ['u1', 'u2'],
    title: 'Hello',
  };
}

function setup() {
  const registry = fakeRegistry();
  const { subject, text } = streamSchema('notify.event');
  const id = registry.register(subject, text);
  const serde = createSerde({ registry: registry.source });
  return { registry, serde, id };
}

async function kindOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return error instanceof SerdeError ? error.kind : `not a SerdeError: ${(error as Error).message}`;
  }
  return 'no error';
}

describe('serde', () => {
  test('encodes in the Confluent wire format and decodes to the full record, defaults filled', async () => {
    const { serde, id } = setup();
    const bytes = await serde.encode('notify.event', event());
    assert.equal(bytes[0], 0);
    assert.equal(bytes.readUInt32BE(1), id);
    assert.deepStrictEqual(await serde.decode('notify.event', bytes), {
      ...event(),
      meta: { ...event().meta, request_id: null },
      agent: null,
      url: null,
      extra: {},
      bundle_key: null,
      expires_at: null,
    });
  });

  test('after the first record, encode and decode do not ask the registry again', async () => {
    const { serde, registry } = setup();
    const bytes = await serde.encode('notify.event', event());
    await serde.decode('notify.event', bytes);
    const calls = registry.state.calls;
    for (let i = 0; i < 10; i++)
      await serde.decode('notify.event', await serde.encode('notify.event', event()));
    assert.equal(registry.state.calls, calls);
  });

  test('bytes without the magic byte, shorter than the header, or with a broken body are malformed', async () => {
    const { serde, id } = setup();
    const good = await serde.encode('notify.event', event());
    assert.equal(
      await kindOf(serde.decode('notify.event', Buffer.from('this is not avro at all'))),
      'malformed',
    );
    assert.equal(await kindOf(serde.decode('notify.event', Buffer.from([0, 0, 0]))), 'malformed');
    assert.equal(await kindOf(serde.decode('notify.event', good.subarray(0, good.length - 3))), 'malformed');
    const header = Buffer.from([0, 0, 0, 0, id]);
    assert.equal(
      await kindOf(serde.decode('notify.event', Buffer.concat([header, Buffer.from([0xff])]))),
      'malformed',
    );
  });

  test('an id the registry never issued is unknown-schema', async () => {
    const { serde } = setup();
    assert.equal(
      await kindOf(serde.decode('notify.event', Buffer.from([0, 0x7f, 0xff, 0xff, 0xf0, 1]))),
      'unknown-schema',
    );
  });

  test('a registry that is down is a transient error, not a verdict on the record, and is asked again', async () => {
    const { serde, registry } = setup();
    const bytes = await createSerde({ registry: registry.source }).encode('notify.event', event());
    registry.state.down = true;
    assert.equal(
      await kindOf(serde.decode('notify.event', bytes)),
      'not a SerdeError: connect ECONNREFUSED 127.0.0.1:8081',
    );
    registry.state.down = false;
    assert.equal((await serde.decode('notify.event', bytes)).event_id, 'ev-1');
  });

  test('a writer schema that cannot be read as the stream is incompatible', async () => {
    const { serde, registry } = setup();
    const user = streamSchema('notify.user');
    const userId = registry.register(user.subject, user.text);
    const bytes = Buffer.concat([
      Buffer.from([0, 0, 0, 0, userId]),
      user.type.toBuffer({
        meta: { id: 'm', dt: 1, stream: 'notify.user', dc: 'eqiad', producer: 'p', request_id: null },
        user_id: 'u1',
      }),
    ]);
    assert.equal(await kindOf(serde.decode('notify.event', bytes)), 'incompatible');
    assert.equal(await kindOf(serde.decode('notify.event', bytes)), 'incompatible', 'and stays so');
  });

  test('a record written with an older schema (fewer fields) reads with the current defaults', async () => {
    const { serde, registry } = setup();
    const current = streamSchema('notify.event').json as AvroSchemaObject;
    const older = {
      ...current,
      fields: (current.fields as { name: string }[]).filter(
        (f) => f.name !== 'bundle_key' && f.name !== 'expires_at',
      ),
    };
    const olderId = registry.register('notify.event-value', JSON.stringify(older));
    const {
      bundle_key: _b,
      expires_at: _e,
      ...oldRecord
    } = {
      ...event(),
      meta: { ...event().meta, request_id: 'req-1' },
      agent: null,
      url: null,
      extra: { a: 'b' },
      bundle_key: null,
      expires_at: null,
    };
    const body = avroType(older).toBuffer(oldRecord);
    const decoded = await serde.decode(
      'notify.event',
      Buffer.concat([Buffer.from([0, 0, 0, 0, olderId]), body]),
    );
    assert.deepStrictEqual(decoded, { ...oldRecord, bundle_key: null, expires_at: null });
  });

  test('an invalid value is refused before the registry is asked, naming each bad field', async () => {
    const { serde, registry } = setup();
    const bad = { ...event(), recipients: ['u1', 7], title: 3 } as unknown as NotifyEventInput;
    await assert.rejects(serde.encode('notify.event', bad), (error: unknown) => {
      assert.ok(error instanceof SerdeError);
      assert.equal(error.kind, 'invalid');
      assert.deepEqual(error.problems, [
        'recipients[1]: expected string, got number 7',
        'title: expected null or string, got number 3',
      ]);
      return true;
    });
    assert.equal(registry.state.calls, 0);
  });

  test('a record over the size limit is invalid', async () => {
    const registry = fakeRegistry();
    const serde = createSerde({ registry: registry.source, maxRecordBytes: 200 });
    assert.equal(
      await kindOf(serde.encode('notify.event', { ...event(), title: 'x'.repeat(500) })),
      'invalid',
    );
  });

  test('a stream whose schema is not registered says how to fix it', async () => {
    const serde = createSerde({ registry: fakeRegistry().source });
    await assert.rejects(serde.schemaId('notify.user'), /notify\.user-value: run "tidings schemas register"/);
  });
});

describe('encodeSync and decodeSync', () => {
  test('answer undefined until the schemas are known, then what encode and decode give', async () => {
    const { serde } = setup();
    assert.equal(serde.encodeSync('notify.event', event()), undefined, 'our schema id is not known yet');
    const bytes = await serde.encode('notify.event', event());
    assert.deepEqual(serde.encodeSync('notify.event', event()), bytes);
    assert.equal(serde.decodeSync('notify.event', bytes), undefined, 'the writer schema is not known yet');
    const decoded = await serde.decode('notify.event', bytes);
    assert.deepEqual(serde.decodeSync('notify.event', bytes), decoded);
  });

  test('throw what encode and decode reject with, without asking the registry', async () => {
    const { serde, registry } = setup();
    await serde.decode('notify.event', await serde.encode('notify.event', event()));
    registry.state.down = true;
    assert.throws(
      () => serde.encodeSync('notify.event', { ...event(), recipients: 'u1' } as unknown as NotifyEventInput),
      (error: unknown) => error instanceof SerdeError && error.kind === 'invalid',
    );
    assert.throws(
      () => serde.decodeSync('notify.event', Buffer.from([1, 0, 0, 0, 1])),
      (error: unknown) => error instanceof SerdeError && error.kind === 'malformed',
    );
  });
});
