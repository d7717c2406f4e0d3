/**
 * SMTP relay credentials against a relay that does not offer STARTTLS: on a non-loopback address
 * (this machine's own external interface, so the test needs no network) the login must not be sent
 * in plain text; on loopback, as the development sink, it still is.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { classifySmtpError } from '../../services/email/smtp-error.ts';
import { createSmtpTransport, isLoopback } from '../../services/email/smtp-transport.ts';

const external = Object.values(networkInterfaces())
  .flat()
  .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;

/** A relay that offers AUTH PLAIN/LOGIN but no STARTTLS, and remembers every password it saw. */
async function plainRelay(host: string) {
  const passwords: string[] = [];
  const server = new SMTPServer({
    disabledCommands: ['STARTTLS'],
    allowInsecureAuth: true,
    logger: false,
    onAuth(auth, _session, callback) {
      passwords.push(auth.password ?? '');
      callback(null, { user: auth.username });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.server.address() as AddressInfo;
  return { port, passwords, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe('SMTP credentials and STARTTLS', () => {
  test('only loopback hosts count as loopback', () => {
    for (const host of ['localhost', '127.0.0.1', '127.3.4.5', '[::1]', '::1'])
      assert.ok(isLoopback(host), host);
    for (const host of ['192.0.2.2', 'relay.example.org', '10.0.0.1', '[fd00::2]', '127.example'])
      assert.ok(!isLoopback(host), host);
  });

  describe('to a relay on a non-loopback address without STARTTLS', {
    skip: !external && 'no external IPv4',
  }, () => {
    let relay: Awaited<ReturnType<typeof plainRelay>>;
    before(async () => {
      relay = await plainRelay(external!);
    });
    after(() => relay.close());

    test('the password is never sent, and the failure is a TLS operator error', async () => {
      const transport = createSmtpTransport({
        url: `smtp://app:s3cret-pw@${external}:${relay.port}`,
        maxConnections: 1,
        timeoutMs: 5_000,
        dkim: null,
      });
      try {
        const error = await transport.verify().then(
          () => null,
          (e: unknown) => e,
        );
        assert.ok(error, 'logging in must fail');
        assert.deepEqual(relay.passwords, [], 'no password crossed the network');
        const kind = classifySmtpError(error);
        assert.equal(kind.kind === 'operator' && kind.problem, 'tls');
      } finally {
        transport.close();
      }
    });
  });

  test('to the development sink on loopback, a login without TLS still works', async () => {
    const relay = await plainRelay('127.0.0.1');
    const transport = createSmtpTransport({
      url: `smtp://app:pw@127.0.0.1:${relay.port}`,
      maxConnections: 1,
      timeoutMs: 5_000,
      dkim: null,
    });
    try {
      await transport.verify();
      assert.deepEqual(relay.passwords, ['pw']);
    } finally {
      transport.close();
      await relay.close();
    }
  });
});
