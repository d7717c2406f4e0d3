import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { test } from 'node:test';
import { createLogger } from '../../libs/log/logger.ts';

/** A logger whose lines land in an array, parsed. */
function capture() {
  const lines: string[] = [];
  const log = createLogger({
    service: 'router',
    dc: 'codfw',
    level: 'debug',
    destination: { write: (line: string) => void lines.push(line) },
  });
  const records = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  return { log, lines, records };
}

test('writes one JSON object per line with service, dc, pid and hostname', () => {
  const { log, lines, records } = capture();
  log.info({ partition: 3 }, 'assigned');
  assert.equal(lines.length, 1);
  assert.ok(lines[0]?.endsWith('\n'));
  const [rec] = records();
  assert.equal(rec?.service, 'router');
  assert.equal(rec?.dc, 'codfw');
  assert.equal(rec?.pid, process.pid);
  assert.equal(rec?.hostname, hostname());
  assert.equal(rec?.level, 'info');
  assert.equal(rec?.msg, 'assigned');
  assert.equal(rec?.partition, 3);
});

test('redacts secret keys at the top level and nested', () => {
  const { log, lines, records } = capture();
  log.info(
    {
      password: 'pw-top',
      DATABASE_URL: 'postgres://u@db/x',
      smtp: { auth: { password: 'pw-deep', apiKey: 'key-deep' } },
      request: { headers: { authorization: 'Bearer tok-1', cookie: 'sid=abc', 'set-cookie': 'sid=def' } },
      device: { token: 'fcm-token' },
      keep: 'visible',
    },
    'connecting',
  );
  const text = lines.join('');
  for (const secret of [
    'pw-top',
    'pw-deep',
    'key-deep',
    'tok-1',
    'sid=abc',
    'sid=def',
    'fcm-token',
    'postgres://u@db',
  ]) {
    assert.ok(!text.includes(secret), `${secret} leaked: ${text}`);
  }
  const [rec] = records() as [{ smtp: { auth: { password: string } }; keep: string }];
  assert.equal(rec.smtp.auth.password, '[Redacted]');
  assert.equal(rec.keep, 'visible');
});

test('masks e-mail addresses in the message, in string fields at any depth and in errors', () => {
  const { log, lines, records } = capture();
  log.warn(
    { rcpt: 'jane.doe@example.org', batch: [{ to: ['bob@mail.example.com'] }] },
    'bounce for %s from <postmaster@example.net>',
    'zoë@exämple.de',
  );
  log
    .child({ user: 'ann@example.io' })
    .error({ err: new Error('550 5.1.1 <al@example.org> unknown') }, 'send failed');
  const text = lines.join('');
  for (const local of ['jane.doe@', 'bob@', 'postmaster@', 'zoë@', 'ann@', 'al@']) {
    assert.ok(!text.includes(local), `${local} leaked: ${text}`);
  }
  const [first, second] = records() as [
    { rcpt: string; batch: [{ to: [string] }]; msg: string },
    { user: string; err: { message: string } },
  ];
  assert.equal(first.rcpt, 'j***@example.org');
  assert.equal(first.batch[0].to[0], 'b***@mail.example.com');
  assert.equal(first.msg, 'bounce for z***@exämple.de from <p***@example.net>');
  assert.equal(second.user, 'a***@example.io');
  assert.equal(second.err.message, '550 5.1.1 <a***@example.org> unknown');
});

test('masks addresses right after escaped characters and keeps the line valid JSON', () => {
  const { log, lines, records } = capture();
  const reply =
    'RCPT failed:\njane@example.org\tx\u0001bob@example.org "carol@example.org" C:\\dave@example.org';
  log.info({ reply }, 'smtp');
  assert.ok(!/jane|bob|carol|dave/.test(lines.join('')), lines.join(''));
  assert.equal(
    records()[0]?.reply,
    'RCPT failed:\nj***@example.org\tx\u0001b***@example.org "c***@example.org" C:\\d***@example.org',
  );
});

test('masks passwords in URLs and leaves password-less URLs readable', () => {
  const { log, records } = capture();
  log.info(
    {
      primary: 'postgres://app:pa55word@db.example.org:5432/tidings',
      odd: 'amqp://app:p@ss@mq.example.org/vhost',
      plain: 'postgres://postgres@127.0.0.1:5432/tidings',
    },
    'dsn redis://:r3dis@cache.example.org:6379/0',
  );
  const [rec] = records();
  assert.equal(rec?.primary, 'postgres://app:***@db.example.org:5432/tidings');
  assert.equal(rec?.odd, 'amqp://app:***@mq.example.org/vhost');
  assert.equal(rec?.plain, 'postgres://postgres@127.0.0.1:5432/tidings');
  assert.equal(rec?.msg, 'dsn redis://:***@cache.example.org:6379/0');
});

test('masking keeps the rest of the line intact: quotes, backslashes, handles, other fields', () => {
  const { log, records } = capture();
  const note = 'ping @oncall: "x@y" said C:\\tmp\\a@b.co\nnext line';
  log.info({ note, topic: 'eqiad.notify.event', email: 'x@example.org' }, 'line');
  const [rec] = records();
  assert.equal(rec?.topic, 'eqiad.notify.event');
  assert.equal(rec?.email, 'x***@example.org');
  assert.equal(rec?.note, 'ping @oncall: "x@y" said C:\\tmp\\a***@b.co\nnext line');
});

test('honours the level', () => {
  const lines: string[] = [];
  const log = createLogger({
    service: 's',
    dc: 'eqiad',
    level: 'warn',
    destination: { write: (l: string) => void lines.push(l) },
  });
  log.info('hidden');
  log.warn('shown');
  assert.deepEqual(
    lines.map((l) => (JSON.parse(l) as { msg: string }).msg),
    ['shown'],
  );
});

test('masks every RFC 5321 address form an outsider can put in a report or reply', () => {
  const { log, lines, records } = capture();
  const addresses = [
    '_jane@example.org',
    '-jane@example.org',
    "o'hara@example.org",
    '"jane doe"@example.org',
    'jane@[192.0.2.1]',
    'jane@[IPv6:2001:db8::1]',
  ];
  log.warn({ diagnostic: `550 unknown ${addresses.join(', ')}` }, 'DELETE /suppressions/jane@example.org');
  const text = lines.join('');
  for (const local of ['_jane', '-jane', "o'hara", 'jane doe', 'jane@']) {
    assert.ok(!text.includes(local), `${local} leaked: ${text}`);
  }
  const [rec] = records() as [{ diagnostic: string; msg: string }];
  assert.equal(rec.msg, 'DELETE /suppressions/j***@example.org');
  assert.equal(
    rec.diagnostic,
    '550 unknown _***@example.org, -***@example.org, o***@example.org, "***"@example.org, j***@[192.0.2.1], j***@[IPv6:2001:db8::1]',
  );
});

test("redacts the SMTP password under nodemailer's key, pass", () => {
  const { log, lines } = capture();
  log.info({ auth: { user: 'relay', pass: 'pw-smtp' }, smtp: { auth: { pass: 'pw-nested' } } }, 'connecting');
  const text = lines.join('');
  assert.ok(!text.includes('pw-smtp') && !text.includes('pw-nested'), text);
});

test('a line of 400 KB of address-like text is scrubbed in one linear pass', { timeout: 60_000 }, () => {
  // Runs of scheme and local-part characters once made both patterns rescan from every position.
  const { log, lines } = capture();
  log.info({ junk: `${'a.'.repeat(100_000)}@${'b.'.repeat(100_000)}` }, 'x');
  assert.equal(lines.length, 1);
});
