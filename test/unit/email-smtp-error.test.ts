import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  classifySmtpError,
  enhancedStatus,
  mayHaveBeenAccepted,
  serverUnreachable,
} from '../../services/email/smtp-error.ts';

/**
 * Error shapes as nodemailer 10.6 produces them (captured against smtp-server 3.21 and closed
 * ports; test/integration/email-smtp-error.test.ts produces them live).
 */
function nodemailerError(fields: Record<string, unknown>): Error {
  return Object.assign(new Error(String(fields.message ?? 'failed')), fields);
}

const shapes = {
  refused: {
    code: 'ESOCKET',
    originalCode: 'ECONNREFUSED',
    command: 'CONN',
    message: 'connect ECONNREFUSED 127.0.0.1:1',
  },
  timeout: { code: 'ETIMEDOUT', command: 'CONN', message: 'Connection timeout' },
  dropped: { code: 'ECONNECTION', command: 'CONN', message: 'Connection closed unexpectedly' },
  greeting421: {
    code: 'ECONNECTION',
    responseCode: 421,
    command: 'CONN',
    response: '421 4.3.2 Service shutting down',
    message: 'Server terminates connection: 421 4.3.2 Service shutting down',
  },
  unknownHost: {
    code: 'EDNS',
    originalCode: 'ENOTFOUND',
    command: 'CONN',
    message: 'getaddrinfo ENOTFOUND smtp.nonexistent.invalid',
  },
  dnsAgain: {
    code: 'EDNS',
    originalCode: 'EAI_AGAIN',
    command: 'CONN',
    message: 'getaddrinfo EAI_AGAIN smtp.example.org',
  },
  auth535: {
    code: 'EAUTH',
    responseCode: 535,
    command: 'AUTH PLAIN',
    response: '535 Invalid username or password',
    message: 'Invalid login: 535 Invalid username or password',
  },
  auth454: {
    code: 'EAUTH',
    responseCode: 454,
    command: 'AUTH PLAIN',
    response: '454 4.7.0 Temporary authentication failure',
    message: 'Invalid login: 454 4.7.0 Temporary authentication failure',
  },
  noCredentials: { code: 'EAUTH', command: 'API', message: 'Missing credentials for "PLAIN"' },
  senderRejected: {
    code: 'EENVELOPE',
    responseCode: 553,
    command: 'MAIL FROM',
    response: '553 5.7.1 Sender rejected',
    message: 'Mail command failed: 553 5.7.1 Sender rejected',
  },
  senderDeferred: {
    code: 'EENVELOPE',
    responseCode: 451,
    command: 'MAIL FROM',
    response: '451 4.3.0 Try again later',
    message: 'Mail command failed: 451 4.3.0 Try again later',
  },
  noSuchUser: {
    code: 'EENVELOPE',
    responseCode: 550,
    command: 'RCPT TO',
    response: '550 5.1.1 No such user',
    message: "Can't send mail - all recipients were rejected: 550 5.1.1 No such user",
  },
  mailboxFull: {
    code: 'EENVELOPE',
    responseCode: 452,
    command: 'RCPT TO',
    response: '452 4.2.2 Mailbox full, try later',
    message: "Can't send mail - all recipients were rejected: 452 4.2.2 Mailbox full, try later",
  },
  invalidRecipient: { code: 'EENVELOPE', command: 'API', message: 'Invalid recipient "bob@"' },
  invalidSender: { code: 'EENVELOPE', command: 'API', message: 'Invalid sender "wiki@"' },
  contentRejected: {
    code: 'EMESSAGE',
    responseCode: 554,
    command: 'DATA',
    response: '554 5.7.1 Content rejected',
    message: 'Message failed: 554 5.7.1 Content rejected',
  },
  userUnknownAfterData: {
    code: 'EMESSAGE',
    responseCode: 550,
    command: 'DATA',
    response: '550 5.1.1 User unknown',
    message: 'Message failed: 550 5.1.1 User unknown',
  },
  tlsToPlain: {
    code: 'ESOCKET',
    originalCode: 'ERR_SSL_WRONG_VERSION_NUMBER',
    command: 'CONN',
    message: 'error:0A00010B:SSL routines:tls_validate_record_header:wrong version number',
  },
  selfSigned: {
    code: 'ESOCKET',
    originalCode: 'DEPTH_ZERO_SELF_SIGNED_CERT',
    command: 'CONN',
    message: 'self-signed certificate',
  },
  starttls: { code: 'ETLS', command: 'STARTTLS', message: 'Error upgrading connection with STARTTLS' },
};

const kindOf = (name: keyof typeof shapes) => classifySmtpError(nodemailerError(shapes[name]));

describe('transient: retried through the retry topics', () => {
  for (const name of [
    'refused',
    'timeout',
    'dropped',
    'greeting421',
    'dnsAgain',
    'auth454',
    'senderDeferred',
    'mailboxFull',
  ] as const) {
    test(name, () => assert.equal(kindOf(name).kind, 'transient'));
  }

  test('something that is not an error at all is retried, not lost', () => {
    assert.equal(classifySmtpError('boom').kind, 'transient');
    assert.equal(classifySmtpError(undefined).kind, 'transient');
  });
});

describe('recipient: permanent for the address, becomes a bounce', () => {
  test('550 5.1.1 on RCPT TO carries the SMTP code, the enhanced status and the diagnostic', () => {
    assert.deepEqual(kindOf('noSuchUser'), {
      kind: 'recipient',
      smtpCode: 550,
      status: '5.1.1',
      detail: "Can't send mail - all recipients were rejected: 550 5.1.1 No such user",
    });
  });

  test('a recipient refused only after DATA, by its 5.1.x status', () => {
    assert.equal(kindOf('userUnknownAfterData').kind, 'recipient');
  });

  test('an address nodemailer cannot even put in the envelope', () => {
    assert.equal(kindOf('invalidRecipient').kind, 'recipient');
  });
});

describe('rejected: this message refused for good, not the address', () => {
  test('554 5.7.1 content rejected after DATA', () => {
    const failure = kindOf('contentRejected');
    assert.equal(failure.kind, 'rejected');
    assert.equal(failure.kind === 'rejected' && failure.status, '5.7.1');
  });
});

describe('operator: our configuration is wrong, with what to fix', () => {
  const cases = [
    ['auth535', 'auth', /user and password/],
    ['noCredentials', 'auth', /user and password/],
    ['senderRejected', 'sender-rejected', /MAIL FROM/],
    ['invalidSender', 'sender-rejected', /MAIL FROM/],
    ['unknownHost', 'unknown-host', /host/],
    ['tlsToPlain', 'tls', /secure\/STARTTLS/],
    ['selfSigned', 'tls', /trusted CA/],
    ['starttls', 'tls', /TLS/],
  ] as const;
  for (const [name, problem, fix] of cases) {
    test(`${name} → ${problem}`, () => {
      const failure = kindOf(name);
      assert.equal(failure.kind, 'operator');
      if (failure.kind !== 'operator') return;
      assert.equal(failure.problem, problem);
      assert.match(failure.fix, fix);
      assert.equal(failure.detail, shapes[name].message);
    });
  }
});

test('enhanced status codes are read from single- and multi-line replies only when well-formed', () => {
  assert.equal(enhancedStatus('550 5.1.1 No such user'), '5.1.1');
  assert.equal(enhancedStatus('452-4.2.2 Mailbox full'), '4.2.2');
  assert.equal(enhancedStatus('550 No such user'), null);
  assert.equal(enhancedStatus('550 9.1.1 nonsense'), null);
});

describe('whether the server may have the message, and whether it answered at all', () => {
  const connectTimeout = nodemailerError({ ...shapes.timeout, timeoutType: 'CONNECT_TIMEOUT' });
  const socketTimeout = nodemailerError({
    code: 'ETIMEDOUT',
    command: 'CONN',
    timeoutType: 'SOCKET_TIMEOUT',
  });
  const reset = nodemailerError({ code: 'ESOCKET', originalCode: 'ECONNRESET', command: 'CONN' });

  test('refused connections and set-up timeouts: unreachable, and surely not accepted', () => {
    for (const error of [nodemailerError(shapes.refused), connectTimeout]) {
      assert.equal(serverUnreachable(error), true);
      assert.equal(mayHaveBeenAccepted(error), false);
    }
  });

  test('a session that broke after set-up without a reply may have delivered the message', () => {
    for (const error of [nodemailerError(shapes.dropped), socketTimeout, reset]) {
      assert.equal(mayHaveBeenAccepted(error), true);
      assert.equal(serverUnreachable(error), false);
    }
  });

  test('any SMTP reply is definite: the server said no', () => {
    for (const name of ['greeting421', 'auth535', 'senderRejected', 'noSuchUser', 'mailboxFull'] as const) {
      assert.equal(mayHaveBeenAccepted(nodemailerError(shapes[name])), false, name);
      assert.equal(serverUnreachable(nodemailerError(shapes[name])), false, name);
    }
  });
});
