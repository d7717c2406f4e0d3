/**
 * classifySmtpError against errors nodemailer really raises, from a real SMTP peer (smtp-server on
 * loopback) and a closed port. Needs no Kafka or Postgres.
 */
import assert from 'node:assert/strict';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import nodemailer from 'nodemailer';
import { SMTPServer } from 'smtp-server';
import {
  classifySmtpError,
  mayHaveBeenAccepted,
  type SmtpFailure,
  serverUnreachable,
} from '../../services/email/smtp-error.ts';

function reply(message: string, responseCode: number): Error {
  return Object.assign(new Error(message), { responseCode });
}

const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ['STARTTLS'],
  logger: false,
  onAuth(auth, _session, callback) {
    if (auth.password === 'right') callback(null, { user: auth.username });
    else callback(reply('Invalid username or password', 535));
  },
  onMailFrom(address, _session, callback) {
    callback(address.address.startsWith('rejected') ? reply('5.7.1 Sender rejected', 553) : undefined);
  },
  onRcptTo(address, _session, callback) {
    if (address.address.startsWith('gone')) return callback(reply('5.1.1 No such user', 550));
    if (address.address.startsWith('full')) return callback(reply('4.2.2 Mailbox full, try later', 452));
    callback();
  },
  onData(stream, session, callback) {
    stream.resume();
    const spam = session.envelope.rcptTo.some((r) => r.address.startsWith('spamtrap'));
    stream.on('end', () => callback(spam ? reply('5.7.1 Content rejected', 554) : undefined));
  },
});
let port = 0;

before(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.server.address() as AddressInfo).port;
});
after(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

async function failureOf(
  transport: Record<string, unknown>,
  envelope: { from?: string; to?: string } = {},
): Promise<SmtpFailure | 'sent'> {
  const mailer = nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    secure: false,
    ignoreTLS: true,
    ...transport,
  });
  try {
    await mailer.sendMail({
      from: envelope.from ?? 'wiki@mail.example.org',
      to: envelope.to ?? 'bob@example.org',
      subject: 'hello',
      text: 'hello',
    });
    return 'sent';
  } catch (err) {
    return classifySmtpError(err);
  } finally {
    mailer.close();
  }
}

describe('nodemailer errors from a real SMTP peer', () => {
  test('a healthy send goes through (the fixture itself works)', async () => {
    assert.equal(await failureOf({}), 'sent');
  });

  test('connection refused is transient', async () => {
    const failure = await failureOf({ port: 1 });
    assert.equal(failure !== 'sent' && failure.kind, 'transient');
  });

  test('wrong password is an operator error about credentials', async () => {
    const failure = await failureOf({ auth: { user: 'tidings', pass: 'wrong' } });
    assert.equal(failure !== 'sent' && failure.kind === 'operator' && failure.problem, 'auth');
  });

  test('a rejected envelope sender is an operator error', async () => {
    const failure = await failureOf({}, { from: 'rejected@mail.example.org' });
    assert.equal(failure !== 'sent' && failure.kind === 'operator' && failure.problem, 'sender-rejected');
  });

  test('550 5.1.1 for the recipient is a permanent recipient failure', async () => {
    const failure = await failureOf({}, { to: 'gone@example.org' });
    assert.deepEqual(
      failure !== 'sent' && failure.kind === 'recipient' && [failure.smtpCode, failure.status],
      [550, '5.1.1'],
    );
  });

  test('452 for the recipient is transient', async () => {
    const failure = await failureOf({}, { to: 'full@example.org' });
    assert.equal(failure !== 'sent' && failure.kind, 'transient');
  });

  test('554 after DATA rejects the message, not the address', async () => {
    const failure = await failureOf({}, { to: 'spamtrap@example.org' });
    assert.equal(failure !== 'sent' && failure.kind, 'rejected');
  });

  test('implicit TLS against a plain-text server is an operator TLS error', async () => {
    const failure = await failureOf({ secure: true });
    assert.equal(failure !== 'sent' && failure.kind === 'operator' && failure.problem, 'tls');
  });
});

/** A server that takes the whole message and hangs up instead of answering the final dot. */
async function hangUpAfterData(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const hangUp = createServer((socket) => {
    sockets.add(socket);
    let inData = false;
    let buffer = '';
    socket.write('220 hang-up ESMTP\r\n');
    socket.on('data', (chunk) => {
      buffer += chunk.toString();
      if (inData) {
        if (buffer.includes('\r\n.\r\n')) socket.destroy();
        return;
      }
      let end = buffer.indexOf('\r\n');
      while (end >= 0 && !inData) {
        const line = buffer.slice(0, end).toUpperCase();
        buffer = buffer.slice(end + 2);
        if (line.startsWith('DATA')) {
          inData = true;
          socket.write('354 go ahead\r\n');
        } else socket.write('250 ok\r\n');
        end = buffer.indexOf('\r\n');
      }
    });
  });
  await new Promise<void>((resolve) => hangUp.listen(0, '127.0.0.1', resolve));
  return {
    port: (hangUp.address() as AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        hangUp.close(() => resolve());
      }),
  };
}

async function errorOf(transport: Record<string, unknown>, to = 'bob@example.org'): Promise<unknown> {
  const mailer = nodemailer.createTransport({
    host: '127.0.0.1',
    secure: false,
    ignoreTLS: true,
    ...transport,
  });
  try {
    await mailer.sendMail({ from: 'wiki@mail.example.org', to, subject: 'hi', text: 'hi' });
    return null;
  } catch (err) {
    return err;
  } finally {
    mailer.close();
  }
}

describe('whether a failed send may still have been delivered', () => {
  test('connection refused: unreachable, and surely not delivered', async () => {
    const error = await errorOf({ port: 1 });
    assert.equal(serverUnreachable(error), true);
    assert.equal(mayHaveBeenAccepted(error), false);
  });

  test('a refusal by reply (550 for the recipient) is definite', async () => {
    const error = await errorOf({ port }, 'gone@example.org');
    assert.ok(error, 'the send failed');
    assert.equal(mayHaveBeenAccepted(error), false);
  });

  test('the server hanging up after the message was sent: it may have been delivered', async () => {
    const server = await hangUpAfterData();
    try {
      const error = await errorOf({ port: server.port });
      assert.ok(error, 'the send failed');
      assert.equal(mayHaveBeenAccepted(error), true);
      assert.equal(serverUnreachable(error), false);
    } finally {
      await server.close();
    }
  });
});
