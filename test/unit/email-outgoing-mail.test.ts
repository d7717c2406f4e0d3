import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NotifyEmailSend } from '../../libs/schemas/types.generated.ts';
import {
  outgoingMail,
  RECIPIENT_HEADER,
  SEND_ID_HEADER,
  UnsendableMailError,
} from '../../services/email/outgoing-mail.ts';

const SEND_ID = '0123456789abcdef0123456789abcdef';

function record(overrides: Partial<NotifyEmailSend> = {}): NotifyEmailSend {
  return {
    meta: { id: 'm', dt: 0, stream: 'notify.email-send', dc: 'eqiad', producer: 'email', request_id: null },
    send_id: SEND_ID,
    notification_ids: ['n1'],
    event_ids: { n1: 'e1' },
    recipient_id: 'u1',
    to: 'alice@example.org',
    from: 'Wiki <wiki@Mail.Example.org>',
    subject: 'Hello',
    text: 'text',
    html: '<p>html</p>',
    headers: {
      'List-Unsubscribe': '<https://example.org/u>',
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
    },
    category: 'c',
    locale: 'en',
    kind: 'instant',
    delivery: 'at_least_once',
    ...overrides,
  };
}

test('the envelope sender is the return path, Message-ID comes from send_id and the From domain', () => {
  const mail = outgoingMail(record(), 'bounces+abc@bounces.example.org');
  assert.deepEqual(mail.envelope, { from: 'bounces+abc@bounces.example.org', to: ['alice@example.org'] });
  assert.equal(mail.messageId, `<${SEND_ID}@mail.example.org>`);
  assert.equal(mail.headers[SEND_ID_HEADER], SEND_ID);
  assert.equal(mail.headers[RECIPIENT_HEADER], 'u1', 'complaint reports name the person');
  assert.equal(mail.headers['List-Unsubscribe-Post'], 'List-Unsubscribe=One-Click');
});

test('headers that route or identify the mail, and malformed names, are not taken from the record', () => {
  const mail = outgoingMail(
    record({
      headers: {
        Bcc: 'victim@example.org',
        cc: 'victim@example.org',
        'Message-ID': '<forged@example.org>',
        [SEND_ID_HEADER]: 'forged',
        [RECIPIENT_HEADER.toLowerCase()]: 'someone-else',
        'X-Bad Name': 'v',
        'X-Bad\r\nX-Injected': 'v',
        'X-Fine': 'ok',
      },
    }),
    'rp@example.org',
  );
  assert.deepEqual(Object.keys(mail.headers).sort(), ['X-Fine', RECIPIENT_HEADER, SEND_ID_HEADER]);
  assert.equal(mail.headers[SEND_ID_HEADER], SEND_ID);
  assert.equal(mail.headers[RECIPIENT_HEADER], 'u1');
});

test('CR and LF in values become spaces', () => {
  const mail = outgoingMail(
    record({ subject: 'a\r\nBcc: x@example.org', headers: { 'X-Note': 'b\nX-Injected: 1\r\n\r\nbody' } }),
    'rp@example.org',
  );
  assert.equal(mail.subject, 'a Bcc: x@example.org');
  assert.equal(mail.headers['X-Note'], 'b X-Injected: 1 body');
});

test('a recipient that is not one plain address is refused', () => {
  for (const to of [
    'a@example.org, b@example.org',
    'Alice <a@example.org>',
    'nobody',
    'a@example.org\r\nb@x.org',
  ]) {
    assert.throws(() => outgoingMail(record({ to }), 'rp@example.org'), UnsendableMailError, to);
  }
});
