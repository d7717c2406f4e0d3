import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { NotifyWeb } from '../../libs/schemas/types.generated.ts';
import { validateRecord } from '../../libs/schemas/validate.ts';

function web(): NotifyWeb {
  return {
    meta: {
      id: 'm1',
      dt: 1_700_000_000_000,
      stream: 'notify.web',
      dc: 'eqiad',
      producer: 'test',
      request_id: null,
    },
    notification: {
      notification_id: 'n1',
      event_id: 'e1',
      event_type: 'edit-user-talk',
      category: 'edit-user-talk',
      recipient_id: 'u1',
      agent: { id: 'u2', name: 'Someone' },
      title: 'Hello',
      url: 'https://example.org/',
      extra: { section: 'Greetings' },
      priority: 1,
      bundle_key: null,
      locale: 'en',
      timezone: 'UTC',
    },
    folded: false,
  };
}

describe('validateRecord', () => {
  test('a valid record has no problems', () => {
    assert.deepEqual(validateRecord('notify.web', web()), []);
  });

  test('each problem names its field path, nested records included', () => {
    const value = web() as unknown as {
      notification: Record<string, unknown>;
      meta: Record<string, unknown>;
    };
    value.notification.recipient_id = 42;
    value.meta.dt = 1.5;
    assert.deepEqual(validateRecord('notify.web', value), [
      'meta.dt: expected long (safe integer), got number 1.5',
      'notification.recipient_id: expected string, got number 42',
    ]);
  });

  test('array items and map values are named by index and key', () => {
    const problems = validateRecord('notify.event', {
      meta: { id: 'm', dt: 1, stream: 'notify.event', dc: 'eqiad', producer: 'p', request_id: null },
      event_id: 'e',
      type: 't',
      category: 'c',
      recipients: ['a', 'b', 7],
      extra: { ok: 'x', 'bad key': false },
    });
    assert.deepEqual(problems, [
      'recipients[2]: expected string, got number 7',
      'extra["bad key"]: expected string, got boolean false',
    ]);
  });

  test('missing required fields, wrong enum symbols and nullable fields say what was expected', () => {
    const problems = validateRecord('notify.preference-change', {
      meta: { id: 'm', dt: 1, stream: 'notify.preference-change', dc: 'eqiad', producer: 'p' },
      user_id: 'u',
      channel: 'sms',
      enabled: true,
      category: 5,
    });
    assert.deepEqual(problems, [
      'category: expected null or string, got number 5',
      'channel: expected one of "web" | "email" | "push", got string',
      'reason: missing, expected string',
    ]);
  });

  test('fields the schema does not declare are problems, at any depth', () => {
    const value = { ...web(), titel: 'typo', notification: { ...web().notification, colour: 'red' } };
    assert.deepEqual(validateRecord('notify.web', value), [
      'notification.colour: unknown field (org.tidings.Notification has no such field)',
      'titel: unknown field (org.tidings.NotifyWeb has no such field)',
    ]);
  });

  test('string values are not echoed (they may be personal data)', () => {
    const problems = validateRecord('notify.user', {
      meta: { id: 'm', dt: 1, stream: 'notify.user', dc: 'eqiad', producer: 'p' },
      user_id: 'u',
      email: ['someone@example.org'],
    });
    assert.equal(problems.length, 1);
    assert.doesNotMatch(problems[0]!, /someone/);
  });

  test('a record over the size limit is a problem naming its size', () => {
    const value = web();
    value.notification.extra = { blob: 'x'.repeat(2000) };
    assert.deepEqual(validateRecord('notify.web', value, { maxBytes: 100_000 }), []);
    const [problem] = validateRecord('notify.web', value, { maxBytes: 1000 });
    assert.match(problem!, /^record is \d+ bytes encoded, over the limit of 1000 bytes$/);
  });
});
