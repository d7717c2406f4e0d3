import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildEmailSend, type EmailSendInput, messageIdOf, sendIdOf } from '../../services/email/message.ts';

function anInput(overrides: Partial<EmailSendInput> = {}): EmailSendInput {
  return {
    kind: 'bundle',
    delivery: 'at_least_once',
    notificationIds: ['n2', 'n1'],
    eventIds: { n1: 'e1', n2: 'e2' },
    recipientId: 'u1',
    to: 'bob@example.org',
    from: 'Wikipedia <wiki@mail.example.org>',
    category: 'edit-user-talk',
    rendered: { subject: 'Subject', text: 'text', html: '<p>html</p>', folder: '_bundle', locale: 'de' },
    sendingDomain: 'mail.example.org',
    unsubscribeHeaders: {
      'List-Unsubscribe': '<https://mail.example.org/unsubscribe?token=t>',
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
    },
    origin: { dc: 'eqiad', producer: 'email' },
    dt: Date.UTC(2026, 10, 21, 8),
    requestId: 'req-1',
    ...overrides,
  };
}

describe('send id', () => {
  test('the same notifications give the same id, in any order and with repeats', () => {
    const id = sendIdOf(['n1', 'n2', 'n3']);
    assert.match(id, /^[0-9a-f]{32}$/);
    assert.equal(sendIdOf(['n3', 'n1', 'n2', 'n1']), id);
  });

  test('different sets give different ids, and ids are kept apart', () => {
    assert.notEqual(sendIdOf(['n1']), sendIdOf(['n1', 'n2']));
    assert.notEqual(sendIdOf(['a,b']), sendIdOf(['a', 'b']));
  });

  test('a mail without notifications is refused', () => {
    assert.throws(() => sendIdOf([]), /at least one notification/);
  });
});

describe('the notify.email-send record', () => {
  test('carries the rendered mail, the sorted ids and the headers the sender passes on', () => {
    const record = buildEmailSend(anInput());
    const sendId = sendIdOf(['n1', 'n2']);
    assert.deepEqual(record, {
      meta: {
        id: record.meta.id,
        dt: Date.UTC(2026, 10, 21, 8),
        stream: 'notify.email-send',
        dc: 'eqiad',
        producer: 'email',
        request_id: 'req-1',
      },
      send_id: sendId,
      notification_ids: ['n1', 'n2'],
      event_ids: { n1: 'e1', n2: 'e2' },
      recipient_id: 'u1',
      to: 'bob@example.org',
      from: 'Wikipedia <wiki@mail.example.org>',
      subject: 'Subject',
      text: 'text',
      html: '<p>html</p>',
      headers: {
        'Message-ID': `<${sendId}@mail.example.org>`,
        'Auto-Submitted': 'auto-generated',
        'X-Tidings-Category': 'edit-user-talk',
        'X-Tidings-Kind': 'bundle',
        'X-Tidings-Send-Id': sendId,
        'List-Unsubscribe': '<https://mail.example.org/unsubscribe?token=t>',
        'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
      },
      category: 'edit-user-talk',
      locale: 'de',
      kind: 'bundle',
      delivery: 'at_least_once',
    });
    assert.match(record.meta.id, /^[0-9a-f-]{36}$/);
  });

  test('rebuilding the same mail after a crash gives the same send id and Message-ID', () => {
    const first = buildEmailSend(anInput());
    const again = buildEmailSend(anInput({ notificationIds: ['n1', 'n2'], dt: Date.UTC(2026, 10, 22) }));
    assert.equal(again.send_id, first.send_id);
    assert.equal(again.headers['Message-ID'], first.headers['Message-ID']);
  });

  test('transactional mail carries no unsubscribe headers', () => {
    const record = buildEmailSend(anInput({ kind: 'transactional', unsubscribeHeaders: null }));
    assert.equal(record.headers['List-Unsubscribe'], undefined);
    assert.equal(record.headers['List-Unsubscribe-Post'], undefined);
  });

  test('no header, subject or address can carry a line break', () => {
    const record = buildEmailSend(
      anInput({
        to: 'bob@example.org\r\nBcc: eve@example.org',
        category: 'edit-user-talk\r\nX-Evil: 1',
        rendered: { subject: 'a\r\nBcc: eve@example.org', text: 't', html: 'h', folder: 'x', locale: 'en' },
      }),
    );
    for (const value of [record.to, record.from, record.subject, ...Object.values(record.headers)])
      assert.doesNotMatch(value, /[\r\n]/);
  });

  test('a sending domain that is not a host name is refused', () => {
    assert.throws(() => messageIdOf('abc', 'mail.example.org>\r\nBcc: x'), /host name/);
    assert.equal(messageIdOf('abc', 'Mail.Example.org'), '<abc@mail.example.org>');
  });
});
