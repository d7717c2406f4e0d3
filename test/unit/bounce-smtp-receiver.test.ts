/**
 * The SMTP receiver on loopback with a recording stand-in for Kafka: when it answers what, and that
 * the 250 waits for the records to be durable.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
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

/** A receiver of its own for a test that spends a limit, so no other test depends on running before it. */
function startReceiver(): Promise<SmtpReceiver> {
  return startSmtpReceiver({
    host: '127.0.0.1',
    port: 0,
    domain: DOMAIN,
    keys: KEYRING.keys,
    maxTokenAgeMs: 86_400_000,
    maxMessageBytes: 64 * 1024,
    maxDeadLetterBytes: 100,
    limits: {
      maxClients: 5,
      maxRecipients: 3,
      maxRefusals: 4,
      maxReportRecipients: 100,
      maxDeadLettersPerMinute: 3,
      socketTimeoutMs: 30_000,
    },
    deadLetterTopic: 'x.notify.bounce.bounce-smtp.dlq',
    dc: 'x',
    sender,
    metrics: createBounceMetrics(new Registry()),
    log: pino({ level: 'silent' }),
    now: Date.now,
  });
}

let receiver: SmtpReceiver;
before(async () => {
  receiver = await startReceiver();
});
after(() => receiver.close());

const verp = (recipient: string) =>
  returnPath({ messageId: 'abcd', recipient, domain: DOMAIN, now: Date.now() }, KEYRING);

async function deliver(rcpt: string, message: string, port = receiver.port) {
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port,
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

test('RCPT TO a made-up return path is refused with 550 and a reply that says not why', async () => {
  await assert.rejects(
    deliver(`postmaster@${DOMAIN}`, DSN),
    (error: { responseCode?: number; response?: string }) => {
      assert.equal(error.responseCode, 550);
      assert.doesNotMatch(error.response ?? '', /malformed|forged|key/i);
      return true;
    },
  );
});

test('a token of a key id we do not know gets 451, so a key rotated in on the sender first loses nothing', async () => {
  const other = returnPath(
    { messageId: 'abcd', recipient: 'alice@example.com', domain: DOMAIN, now: Date.now() },
    { current: 5, keys: [{ id: 5, secret: 'o'.repeat(32) }] },
  );
  await assert.rejects(deliver(other, DSN), (error: { responseCode?: number; response?: string }) => {
    assert.equal(error.responseCode, 451);
    assert.doesNotMatch(error.response ?? '', /key|unknown/i, 'which key ids exist is not told');
    return true;
  });
});

/** Speaks SMTP line by line: every reply to `commands`, until the server hangs up. */
async function session(commands: readonly string[]): Promise<{ replies: string[]; closed: boolean }> {
  const socket = connect(receiver.port, '127.0.0.1');
  const replies: string[] = [];
  let buffer = '';
  let closed = false;
  const waiters: (() => void)[] = [];
  socket.on('data', (chunk) => {
    buffer += chunk.toString('latin1');
    for (let end = buffer.indexOf('\r\n'); end >= 0; end = buffer.indexOf('\r\n')) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (/^\d{3} /.test(line)) {
        replies.push(line);
        waiters.shift()?.();
      }
    }
  });
  socket.on('close', () => {
    closed = true;
    for (const w of waiters.splice(0)) w();
  });
  const reply = () => new Promise<void>((resolve) => (closed ? resolve() : waiters.push(resolve)));
  await reply();
  for (const command of commands) {
    if (closed) break;
    socket.write(`${command}\r\n`);
    await reply();
  }
  socket.destroy();
  return { replies, closed };
}

test('a session naming one bogus RCPT after another is closed at the refusal limit', async () => {
  const bogus = Array.from({ length: 3000 }, (_, i) => `RCPT TO:<bounces+x${i}@${DOMAIN}>`);
  const { replies, closed } = await session(['EHLO attacker.example', 'MAIL FROM:<>', ...bogus]);
  assert.ok(closed, 'the server hung up');
  // The greeting, EHLO, MAIL, three 550s, then the 421 that closes: not 3,000 answers.
  assert.equal(replies.length, 3 + 4);
  assert.match(replies.at(-1)!, /^421 /);
});

test('RCPT TO past the per-message limit is answered 452', async () => {
  const rcpts = ['a', 'b', 'c', 'd'].map((n) => `RCPT TO:<${verp(`${n}@example.com`)}>`);
  const { replies } = await session(['EHLO mta.example', 'MAIL FROM:<>', ...rcpts, 'QUIT']);
  assert.deepEqual(
    replies.slice(3, 7).map((r) => r.slice(0, 3)),
    ['250', '250', '250', '452'],
  );
});

test('dead letters are rate-limited: past the limit an unreadable mail is answered 451', async () => {
  const limited = await startReceiver();
  raw.length = 0;
  const junk = fixture('malformed-not-a-report.eml');
  const answers: number[] = [];
  try {
    for (let i = 0; i < 5; i++) {
      answers.push(
        await deliver(verp('alice@example.com'), junk, limited.port).then(
          () => 250,
          (error: { responseCode?: number }) => error.responseCode ?? 0,
        ),
      );
    }
  } finally {
    await limited.close();
  }
  // The limit is 3 a minute, and the window opens with the receiver's first dead letter.
  assert.equal(raw.length, 3);
  assert.deepEqual(answers, [250, 250, 250, 451, 451]);
});
