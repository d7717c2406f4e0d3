/**
 * The SMTP receiver on loopback with a recording stand-in for Kafka: when it answers what, and that
 * the 250 waits for the records to be durable.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import nodemailer from 'nodemailer';
import pino from 'pino';
import { Registry } from 'prom-client';
import { HEADER } from '../../libs/kafka/record-headers.ts';
import { returnPath } from '../../libs/mail/verp.ts';
import { createBounceMetrics } from '../../services/bounce/bounce-metrics.ts';
import type { Outgoing, RawRecord, RecordSender } from '../../services/bounce/record-sender.ts';
import { type SmtpReceiver, startSmtpReceiver } from '../../services/bounce/smtp-receiver.ts';

const DOMAIN = 'bounce.example';
const KEYRING = { current: 2, keys: [{ id: 2, secret: 's'.repeat(32) }] };
const fixture = (file: string) =>
  readFileSync(join(import.meta.dirname, '..', 'fixtures', 'bounces', file), 'utf8');
const DSN = fixture('postfix-user-unknown.eml');

/** What the receiver hands to Kafka; `gate` decides when (and whether) a send succeeds. */
const sent: Outgoing[][] = [];
const raw: RawRecord[] = [];
let gate: () => Promise<void> = async () => undefined;
const sender: RecordSender = {
  async send(records) {
    await gate();
    sent.push([...records]);
  },
  async sendRaw(record) {
    raw.push(record);
  },
};

let receiver: SmtpReceiver;
before(async () => {
  receiver = await startSmtpReceiver({
    host: '127.0.0.1',
    port: 0,
    domain: DOMAIN,
    keys: KEYRING.keys,
    maxTokenAgeMs: 86_400_000,
    maxMessageBytes: 64 * 1024,
    maxDeadLetterBytes: 100,
    deadLetterTopic: 'x.notify.bounce.bounce-smtp.dlq',
    dc: 'x',
    sender,
    metrics: createBounceMetrics(new Registry()),
    log: pino({ level: 'silent' }),
    now: Date.now,
  });
});
after(() => receiver.close());

const verp = (recipient: string) =>
  returnPath({ messageId: 'abcd', recipient, domain: DOMAIN, now: Date.now() }, KEYRING);

async function deliver(rcpt: string, message: string) {
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port: receiver.port,
    secure: false,
    ignoreTLS: true,
  });
  try {
    return await transport.sendMail({ envelope: { from: '', to: [rcpt] }, raw: message });
  } finally {
    transport.close();
  }
}

const responseCode = (expected: number) => (error: { responseCode?: number }) => {
  assert.equal(error.responseCode, expected);
  return true;
};

test('the 250 is sent only once the bounce records are durable', async () => {
  sent.length = 0;
  let release!: () => void;
  let called!: () => void;
  const sendCalled = new Promise<void>((r) => (called = r));
  gate = () => {
    called();
    return new Promise<void>((r) => (release = r));
  };
  let answered = false;
  const delivery = deliver(verp('alice@example.com'), DSN).then((info) => {
    answered = true;
    return info;
  });
  await sendCalled;
  assert.equal(answered, false, 'no reply while the records are not acknowledged');
  release();
  const info = await delivery;
  assert.match(info.response, /^250 /);
  assert.equal(sent[0]?.[0]?.stream, 'notify.bounce');
  gate = async () => undefined;
});

test('when the records cannot be made durable the answer is 451, so the MTA tries again', async () => {
  gate = async () => {
    throw new Error('kafka is away');
  };
  await assert.rejects(deliver(verp('alice@example.com'), DSN), responseCode(451));
  gate = async () => undefined;
});

test('a token for one address does not let a report suppress another', async () => {
  sent.length = 0;
  const info = await deliver(verp('someone-else@example.com'), DSN);
  assert.match(info.response, /^250 /);
  assert.deepEqual(sent, [], 'alice@example.com is not who the token was issued for');
});

test('an unreadable mail is dead-lettered with its reason, cut to the configured size', async () => {
  raw.length = 0;
  const message = fixture('malformed-not-a-report.eml');
  const info = await deliver(verp('alice@example.com'), message);
  assert.match(info.response, /^250 /);
  const [letter] = raw;
  assert.equal(letter?.topic, 'x.notify.bounce.bounce-smtp.dlq');
  assert.equal(letter?.headers[HEADER.errorKind], 'unrecognized');
  assert.equal(letter?.headers['tidings.raw.truncated'], 'true');
  assert.equal(letter?.value.length, 100);
});

test('a mail over the size limit is refused with 552', async () => {
  const big = `${DSN}\r\n${'x'.repeat(70 * 1024)}\r\n`;
  await assert.rejects(deliver(verp('alice@example.com'), big), responseCode(552));
});

test('RCPT TO a return path of another key, or a made-up one, is refused with 550', async () => {
  const other = returnPath(
    { messageId: 'abcd', recipient: 'alice@example.com', domain: DOMAIN, now: Date.now() },
    { current: 5, keys: [{ id: 5, secret: 'o'.repeat(32) }] },
  );
  await assert.rejects(deliver(other, DSN), responseCode(550));
  await assert.rejects(deliver(`postmaster@${DOMAIN}`, DSN), responseCode(550));
});
