import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkpointKey } from '../../libs/kafka/checkpointer.ts';
import { buildRecord } from '../../libs/publish/publish.ts';
import { STREAMS } from '../../libs/schemas/catalog.ts';
import { recordKey, STREAM_KEYS } from '../../libs/schemas/stream-keys.ts';
import { validateRecord } from '../../libs/schemas/validate.ts';

const context = { dc: 'eqiad', producer: 'my-app', now: () => 1_700_000_000_000, newId: () => 'fixed-id' };

describe('buildRecord', () => {
  test('fills meta: a new id, now, the stream, the datacenter and the producer', () => {
    const built = buildRecord('notify.user', { user_id: 'u1', email: 'a@example.org' }, context);
    assert.ok('value' in built);
    assert.deepEqual(built.value.meta, {
      id: 'fixed-id',
      dt: 1_700_000_000_000,
      stream: 'notify.user',
      dc: 'eqiad',
      producer: 'my-app',
      request_id: null,
    });
    assert.equal(built.key, 'u1');
    assert.deepEqual(validateRecord('notify.user', built.value), []);
  });

  test('takes dt and request_id from the input', () => {
    const built = buildRecord(
      'notify.event',
      { event_id: 'e1', type: 't', category: 'c', recipients: [], meta: { dt: 5, request_id: 'r-9' } },
      context,
    );
    assert.ok('value' in built);
    assert.equal(built.value.meta.dt, 5);
    assert.equal(built.value.meta.request_id, 'r-9');
  });

  test('refuses other meta fields rather than silently replacing them', () => {
    const input = { user_id: 'u1', meta: { stream: 'notify.event', dc: 'codfw' } } as never;
    const built = buildRecord('notify.user', input, context);
    assert.deepEqual(built, {
      problems: [
        'meta.stream: set by the publisher; only meta.dt and meta.request_id may be given',
        'meta.dc: set by the publisher; only meta.dt and meta.request_id may be given',
      ],
    });
  });

  test('a record that is not an object is a problem, not a crash', () => {
    assert.deepEqual(buildRecord('notify.user', null as never, context), {
      problems: ['(record): expected an object, got null'],
    });
  });

  test('an explicit key wins over the stream default', () => {
    const built = buildRecord('notify.user', { user_id: 'u1' }, context, 'other');
    assert.ok('key' in built);
    assert.equal(built.key, 'other');
  });
});

describe('stream keys', () => {
  test('every stream has a key', () => {
    assert.deepEqual(Object.keys(STREAM_KEYS).sort(), [...STREAMS].sort());
  });

  test('channel records are keyed by recipient, bounces by address hash, checkpoints like the runtime keys them', () => {
    const notification = { recipient_id: 'u7' } as never;
    assert.equal(recordKey('notify.web', { notification, folded: false }), 'u7');
    assert.equal(recordKey('notify.push', { notification }), 'u7');
    assert.equal(recordKey('notify.bounce', { address_hash: 'h1', kind: 'hard', source: 'arf' }), 'h1');
    assert.equal(
      recordKey('notify.checkpoint', {
        group: 'router',
        topic: 'eqiad.notify.event',
        partition: 2,
        offset: 1,
        record_time: 1,
      }),
      checkpointKey('router', 'eqiad.notify.event', 2),
    );
  });
});
