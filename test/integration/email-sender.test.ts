/**
 * The email service's sender side as a process (EMAIL_SIDES=sender) against the real stack, with
 * test/smtp-sink as the real SMTP server: headers and the VERP envelope, suppressions, an SMTP
 * outage, a crash mid-batch, a 5xx for one recipient, bad credentials fixed while running, header
 * injection, and the daily send cap. Records are published straight to notify.email-send.
 * Group names are the service's own, not per datacenter: each test stops its process before the
 * next one starts, or a leftover member would be handed the next test's partitions.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import pg from 'pg';
import { DEFAULT_DATABASE_URL } from '../../libs/config/common.ts';
import { migrate } from '../../libs/db/migrate.ts';
import { createPool } from '../../libs/db/pool.ts';
import { dlqTopic, topicFor } from '../../libs/kafka/topics.ts';
import { addressHash, issuedFor, parseVerpKeyring, verifyReturnPath } from '../../libs/mail/verp.ts';
import type { Publisher } from '../../libs/publish/publish.ts';
import { createSerde } from '../../libs/schemas/serde.ts';
import type { NotifyEmailSendInput } from '../../libs/schemas/types.generated.ts';
import { createDailyBudget, sentOnDay } from '../../services/email/send-budget.ts';
import {
  headerValues,
  rawHeaders,
  type SmtpSink,
  type SmtpSinkOptions,
  startSmtpSink,
} from '../smtp-sink/sink.ts';
import {
  applyTestTopicPlan,
  createStreamTopics,
  deleteDcTopics,
  eventually,
  groupLag,
  metricValue,
  quietLog,
  REGISTRY_URL,
  readTopic,
  retryDelaysVar,
  runTidings,
  type ServiceProcess,
  startService,
  stopServices,
  streamAndRetryTopics,
  testKafka,
  testPublisher,
  uniqueDc,
  untilCommitted,
  withAdmin,
} from './harness.ts';

const kafka = testKafka('eqiad');
const SENDER_RETRY_DELAYS_MS = [300, 1_000, 2_000];
const db = new pg.Pool({ connectionString: DEFAULT_DATABASE_URL, max: 2 });
const serde = createSerde({ registryUrl: REGISTRY_URL });
const cleanups: (() => Promise<void>)[] = [];

const VERP_KEYS = `3:${randomBytes(32).toString('base64')}`;
const VERP_DOMAIN = 'bounces.example.org';
const FROM = 'Wiki <wiki@mail.example.org>';

after(async () => {
  await stopServices('SIGKILL');
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  await db.end();
});

interface Setup {
  dc: string;
  schema: string;
  publisher: Publisher;
  sink: SmtpSink;
}

/** A datacenter, database schema and SMTP sink of the test's own. */
async function setUp(sinkOptions: SmtpSinkOptions = {}): Promise<Setup> {
  const dc = uniqueDc();
  const schema = `email_${dc}`;
  await createStreamTopics(kafka, dc, ['notify.email-send', 'notify.suppression', 'notify.bounce'], 2);
  await createStreamTopics(kafka, dc, ['notify.checkpoint', 'notify.erasure', 'notify.status'], 1);
  await applyTestTopicPlan(kafka, dc, { services: ['email'], retryDelaysMs: SENDER_RETRY_DELAYS_MS });
  const publisher = testPublisher(dc, 'test');
  const sink = await startSmtpSink(sinkOptions);
  cleanups.push(async () => {
    await sink.stop();
    await publisher.close();
    await deleteDcTopics(kafka, dc);
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  });
  return { dc, schema, publisher, sink };
}

async function spawnSender(setup: Setup, env: Record<string, string> = {}): Promise<ServiceProcess> {
  const sender = await startService(
    'email',
    setup.dc,
    {
      EMAIL_SIDES: 'sender',
      DATABASE_SCHEMA: setup.schema,
      CONSUMER_SESSION_TIMEOUT: '6s',
      CHECKPOINT_INTERVAL: '500ms',
      RETRY_DELAYS: retryDelaysVar(SENDER_RETRY_DELAYS_MS),
      SMTP_URL: `smtp://${setup.sink.host}:${setup.sink.port}`,
      SMTP_TIMEOUT: '5s',
      VERP_DOMAIN,
      VERP_KEYS,
      EMAIL_SMTP_PROBE_INTERVAL: '300ms',
      ...env,
    },
    { capture: true },
  );
  cleanups.push(() => sender.stop());
  return sender;
}

function emailSend(to: string, overrides: Partial<NotifyEmailSendInput> = {}): NotifyEmailSendInput {
  const sendId = randomBytes(16).toString('hex');
  return {
    meta: { dt: Date.now() },
    send_id: sendId,
    notification_ids: [randomUUID()],
    recipient_id: `user-${to}`,
    to,
    from: FROM,
    subject: 'Someone left a message on your talk page',
    text: 'Hello, see https://example.org/wiki/User_talk:X',
    html: '<p>Hello, see <a href="https://example.org/wiki/User_talk:X">your talk page</a></p>',
    headers: {
      'List-Unsubscribe': `<https://example.org/unsubscribe/${sendId}>`,
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
    },
    category: 'edit-user-talk',
    locale: 'en',
    kind: 'instant',
    ...overrides,
  } as NotifyEmailSendInput;
}

async function publish(setup: Setup, records: readonly NotifyEmailSendInput[]): Promise<void> {
  await setup.publisher.publishMany(records.map((record) => ({ stream: 'notify.email-send', record })));
}

const sendIdOf = (mail: SmtpSink['received'][number]) =>
  mail.parsed?.headers.get('x-tidings-send-id')?.toString() ?? '';

/** How many copies of each send id the sink received. */
function copies(sink: SmtpSink): Map<string, number> {
  const counts = new Map<string, number>();
  for (const mail of sink.received) counts.set(sendIdOf(mail), (counts.get(sendIdOf(mail)) ?? 0) + 1);
  return counts;
}

async function arrived(sink: SmtpSink, sendIds: readonly string[], timeoutMs = 30_000): Promise<void> {
  await eventually(
    () => (sendIds.every((id) => copies(sink).has(id)) ? true : undefined),
    `${sendIds.length} messages to arrive at the sink`,
    timeoutMs,
  );
}

const outcome = (port: number, name: string) =>
  metricValue(port, 'tidings_email_sender_messages_total', { outcome: name });

async function metricReaches(port: number, name: string, labels: Record<string, string>, value: number) {
  await eventually(
    async () => ((await metricValue(port, name, labels)) >= value ? true : undefined),
    `${name}${JSON.stringify(labels)} to reach ${value}`,
  );
}

const senderTopics = (dc: string) => streamAndRetryTopics(kafka, dc, 'notify.email-send', 'email');

async function drained(dc: string): Promise<void> {
  await untilCommitted(
    kafka,
    'email-sender',
    () => senderTopics(dc),
    'the sender to commit everything',
    60_000,
  );
}

async function deadLetters(dc: string): Promise<number> {
  return withAdmin(kafka, async (admin) => {
    const topic = dlqTopic(dc, 'notify.email-send', 'email');
    if (!(await admin.listTopics()).includes(topic)) return 0;
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((sum, p) => sum + Number(p.high), 0);
  });
}

async function suppress(setup: Setup, address: string, until: number | null = null): Promise<void> {
  await setup.publisher.publish('notify.suppression', {
    meta: { dt: Date.now() },
    address_hash: addressHash(address),
    address,
    reason: 'hard_bounce',
    until,
    detail: '550 5.1.1 no such user',
  });
  await eventually(async () => {
    const { rows } = await db.query(`SELECT 1 FROM ${setup.schema}.suppressions WHERE address_hash = $1`, [
      addressHash(address),
    ]);
    return rows.length === 1 ? true : undefined;
  }, 'the suppression to be materialized');
}

/** Waits a little so a message that should not arrive had its chance to. */
const settle = (ms = 1_500) => new Promise((resolve) => setTimeout(resolve, ms));

describe('email sender, delivering', () => {
  let setup: Setup;
  let sender: ServiceProcess;
  before(async () => {
    setup = await setUp({
      refuseRecipient: (address) =>
        address.startsWith('gone') ? [550, '5.1.1 No such user here'] : undefined,
    });
    sender = await spawnSender(setup);
  });
  after(() => sender.stop());

  test('a message arrives with Message-ID, the record’s List-Unsubscribe headers, a VERP envelope sender and its send id', async () => {
    const record = emailSend('alice@example.org');
    await publish(setup, [record]);
    await arrived(setup.sink, [record.send_id]);
    const mail = setup.sink.received.find((m) => sendIdOf(m) === record.send_id);
    assert.ok(mail?.parsed);
    assert.equal(mail.parsed.messageId, `<${record.send_id}@mail.example.org>`);
    assert.deepEqual(headerValues(mail, 'list-unsubscribe-post'), ['List-Unsubscribe=One-Click']);
    assert.deepEqual(headerValues(mail, 'list-unsubscribe'), [
      `<https://example.org/unsubscribe/${record.send_id}>`,
    ]);
    assert.deepEqual(headerValues(mail, 'x-tidings-send-id'), [record.send_id]);
    assert.deepEqual(mail.rcptTo, ['alice@example.org']);
    assert.equal(mail.parsed.subject, record.subject);

    const verified = verifyReturnPath(mail.mailFrom, parseVerpKeyring(VERP_KEYS).keys, {
      now: Date.now(),
      maxAgeMs: 3_600_000,
      domain: VERP_DOMAIN,
    });
    assert.ok(verified.ok, `return path ${mail.mailFrom} does not verify`);
    assert.equal(verified.fields.messageId, record.send_id);
    assert.ok(issuedFor(verified.fields, 'alice@example.org', parseVerpKeyring(VERP_KEYS).keys));
  });

  test('CR/LF in the subject or a header value, and reserved or malformed header names, add no header', async () => {
    const record = emailSend('bob@example.org', {
      subject: 'Hi\r\nBcc: victim@example.org\r\nX-Injected: subject',
      headers: {
        'X-Note': 'fine\r\nX-Injected: value\r\n\r\n<html>body</html>',
        Bcc: 'victim@example.org',
        'Reply-To': 'attacker@example.org',
        'X-Bad\r\nX-Injected': 'name',
      },
    });
    await publish(setup, [record]);
    await arrived(setup.sink, [record.send_id]);
    const mail = setup.sink.received.find((m) => sendIdOf(m) === record.send_id);
    assert.ok(mail?.parsed);
    assert.deepEqual(mail.rcptTo, ['bob@example.org']);
    const names = rawHeaders(mail).map(([name]) => name);
    for (const forbidden of ['x-injected', 'bcc', 'reply-to'])
      assert.ok(!names.includes(forbidden), forbidden);
    assert.equal(names.filter((n) => n === 'subject').length, 1);
    assert.match(mail.parsed.subject ?? '', /^Hi Bcc: victim@example.org X-Injected: subject$/);
    assert.deepEqual(headerValues(mail, 'x-note'), ['fine X-Injected: value <html>body</html>']);
  });

  test('a suppressed address is not mailed; after the tombstone it is, and an expired suppression does not hold', async () => {
    await suppress(setup, 'carol@example.org');
    await suppress(setup, 'dave@example.org', Date.now() - 60_000);
    const held = emailSend('carol@example.org');
    const expired = emailSend('dave@example.org');
    const before = await outcome(sender.port, 'suppressed');
    await publish(setup, [held, expired]);
    await arrived(setup.sink, [expired.send_id]);
    await metricReaches(
      sender.port,
      'tidings_email_sender_messages_total',
      { outcome: 'suppressed' },
      before + 1,
    );
    await drained(setup.dc);
    assert.equal(copies(setup.sink).has(held.send_id), false);

    await setup.publisher.tombstone('notify.suppression', addressHash('carol@example.org'));
    await eventually(async () => {
      // A lift leaves a marker row, so an older copy of the suppression cannot come back.
      const { rows } = await db.query(
        `SELECT 1 FROM ${setup.schema}.suppressions WHERE address_hash = $1 AND lifted`,
        [addressHash('carol@example.org')],
      );
      return rows.length === 1 ? true : undefined;
    }, 'the suppression to be lifted');
    const next = emailSend('carol@example.org');
    await publish(setup, [next]);
    await arrived(setup.sink, [next.send_id]);
  });

  test('a 5xx for one recipient becomes a notify.bounce; the others are still sent', async () => {
    const gone = emailSend('gone@example.org');
    const others = [emailSend('erin@example.org'), emailSend('frank@example.org')];
    await publish(setup, [gone, ...others]);
    await arrived(
      setup.sink,
      others.map((r) => r.send_id),
    );
    const [message] = await readTopic(kafka, topicFor(setup.dc, 'notify.bounce'), (m) => m.length >= 1);
    assert.ok(message?.value);
    assert.equal(message.key?.toString(), addressHash('gone@example.org'));
    const bounce = await serde.decode('notify.bounce', message.value);
    assert.equal(bounce.source, 'sender');
    assert.equal(bounce.kind, 'hard');
    assert.equal(bounce.smtp_code, 550);
    assert.equal(bounce.status, '5.1.1');
    assert.equal(bounce.send_id, gone.send_id);
    assert.equal(bounce.address_hash, addressHash('gone@example.org'));
    assert.equal(bounce.sending_domain, 'mail.example.org');
    await drained(setup.dc);
    assert.equal(copies(setup.sink).has(gone.send_id), false);
    assert.equal(await deadLetters(setup.dc), 0);
  });
});

describe('email sender, SMTP down for a while', () => {
  test('the message is delivered once the server is back, exactly once, and nothing is dead-lettered', async () => {
    const setup = await setUp();
    const sender = await spawnSender(setup);
    await setup.sink.stop();
    const record = emailSend('grace@example.org');
    await publish(setup, [record]);
    await metricReaches(sender.port, 'tidings_email_sender_messages_total', { outcome: 'retried' }, 1);
    await metricReaches(
      sender.port,
      'tidings_consumer_pause_reasons',
      { group: 'email-sender', reason: 'smtp-unreachable' },
      1,
    );
    await settle(3_000);
    await setup.sink.start();
    await arrived(setup.sink, [record.send_id]);
    await drained(setup.dc);
    await settle();
    assert.equal(copies(setup.sink).get(record.send_id), 1);
    assert.equal(await deadLetters(setup.dc), 0);
    await sender.stop();
  });
});

describe('email sender, killed mid-batch', () => {
  test('after SIGKILL and a restart nothing is lost; every second copy is an unconfirmed claim under the same Message-ID', async () => {
    const setup = await setUp();
    const slow = { EMAIL_SEND_PER_SECOND: '100', EMAIL_SEND_BURST: '10' };
    const first = await spawnSender(setup, slow);
    // Every third message is of a category that chose at most once.
    const records = Array.from({ length: 300 }, (_, i) =>
      emailSend(`person${i}@example.org`, i % 3 === 2 ? { delivery: 'at_most_once' } : {}),
    );
    const atMostOnce = new Set(records.filter((r) => r.delivery === 'at_most_once').map((r) => r.send_id));
    await publish(setup, records);
    await eventually(() => (setup.sink.received.length >= 60 ? true : undefined), 'some mail to arrive');
    await first.stop('SIGKILL');
    const atKill = setup.sink.received.length;
    assert.ok(atKill < records.length, `all ${atKill} arrived before the kill; the test proves nothing`);
    const { rows } = await db.query<{ send_id: string }>(
      `SELECT send_id FROM ${setup.schema}.sent_messages WHERE state = 'sending'`,
    );
    const unconfirmed = new Set(rows.map((r) => r.send_id));
    const resendable = [...unconfirmed].filter((id) => !atMostOnce.has(id));
    assert.ok(
      resendable.length > 0,
      'no at-least-once claim was in flight at the kill; the test proves nothing',
    );

    const second = await spawnSender(setup);
    await drained(setup.dc);
    await settle();
    const counts = copies(setup.sink);
    const lost = records.filter((r) => !counts.has(r.send_id) && !atMostOnce.has(r.send_id));
    assert.deepEqual(
      lost.map((r) => r.send_id),
      [],
      'at-least-once mail lost at the crash',
    );
    for (const [id, n] of counts) {
      if (n === 1) continue;
      assert.equal(n, 2, `${id} arrived ${n} times`);
      assert.ok(unconfirmed.has(id), `${id} arrived twice but was not an unconfirmed claim at the kill`);
      assert.ok(!atMostOnce.has(id), `${id} is at most once but arrived twice`);
      const ids = setup.sink.received
        .filter((mail) => sendIdOf(mail) === id)
        .map((mail) => headerValues(mail, 'message-id'));
      assert.deepEqual(ids[1], ids[0], `the second copy of ${id} has the first one's Message-ID`);
    }
    const missing = records.filter((r) => !counts.has(r.send_id)).map((r) => r.send_id);
    for (const id of missing) assert.ok(unconfirmed.has(id), `${id} neither arrived nor was unconfirmed`);
    assert.equal(await outcome(second.port, 'resent'), resendable.length);
    assert.equal(await outcome(second.port, 'ambiguous'), unconfirmed.size - resendable.length);
    console.log(
      JSON.stringify({
        sigkill: {
          messages: records.length,
          unconfirmed_at_kill: unconfirmed.size,
          resent: resendable.length,
        },
        lost: lost.length,
        duplicates: [...counts.values()].filter((n) => n > 1).length,
        at_most_once_not_sent: missing.length,
      }),
    );
    await second.stop();
  });
});

describe('email sender, bad credentials', () => {
  test('an operator error holds the messages without dead-lettering; once the server accepts, they go out once', async () => {
    const setup = await setUp({ credentials: { user: 'tidings', pass: 'the-right-one' } });
    const password = `pw-${randomBytes(6).toString('hex')}`;
    const sender = await spawnSender(setup, {
      SMTP_URL: `smtp://tidings:${password}@${setup.sink.host}:${setup.sink.port}`,
    });
    const records = [
      emailSend('heidi@example.org'),
      emailSend('ivan@example.org'),
      emailSend('judy@example.org'),
    ];
    await publish(setup, records);
    await metricReaches(sender.port, 'tidings_email_sender_operator_error', { problem: 'auth' }, 1);
    const ready = await fetch(`http://127.0.0.1:${sender.port}/readyz`);
    assert.equal(ready.status, 503);
    assert.match(await ready.text(), /SMTP misconfiguration \(auth\)/);
    await settle(2_000);
    assert.equal(setup.sink.received.length, 0);
    assert.equal(await deadLetters(setup.dc), 0);
    assert.ok(
      (await groupLag(kafka, 'email-sender', await senderTopics(setup.dc))) >= records.length,
      'the held messages are not committed',
    );

    setup.sink.setCredentials({ user: 'tidings', pass: password });
    await arrived(
      setup.sink,
      records.map((r) => r.send_id),
    );
    await drained(setup.dc);
    await settle();
    for (const [id, n] of copies(setup.sink)) assert.equal(n, 1, `${id} arrived ${n} times`);
    assert.equal(
      await metricValue(sender.port, 'tidings_email_sender_operator_error', { problem: 'auth' }),
      0,
    );
    assert.equal(await deadLetters(setup.dc), 0);
    const logged = sender
      .output()
      .match(/SMTP misconfiguration \(auth\): [^"]*check the SMTP user and password/g);
    assert.equal(logged?.length, 1, 'logged once for the period, with what to fix');
    assert.ok(!sender.output().includes(password), 'the password never reaches the log');
    await sender.stop();
  });
});

describe('email sender, daily cap', () => {
  test('only the cap is sent; duplicates and suppressed mail do not spend it; the rest goes once the cap allows', async () => {
    const setup = await setUp();
    const first = await spawnSender(setup, { EMAIL_SEND_DAILY_CAPS: '3' });
    const sent = emailSend('kim@example.org');
    await publish(setup, [sent]);
    await arrived(setup.sink, [sent.send_id]);
    await suppress(setup, 'leo@example.org');
    const fresh = [emailSend('mia@example.org'), emailSend('ned@example.org'), emailSend('oli@example.org')];
    await publish(setup, [sent, emailSend('leo@example.org'), ...fresh]);
    await metricReaches(
      first.port,
      'tidings_email_sender_messages_total',
      { outcome: 'skipped_duplicate' },
      1,
    );
    await metricReaches(first.port, 'tidings_email_sender_messages_total', { outcome: 'suppressed' }, 1);
    await metricReaches(
      first.port,
      'tidings_consumer_pause_reasons',
      { group: 'email-sender', reason: 'send-budget' },
      1,
    );
    await eventually(() => (setup.sink.received.length >= 3 ? true : undefined), 'the cap to be used up');
    await settle();
    assert.equal(setup.sink.received.length, 3);
    const { rows } = await db.query<{ sent: number }>(`SELECT sent FROM ${setup.schema}.send_counts`);
    assert.deepEqual(
      rows.map((r) => r.sent),
      [3],
    );
    await first.stop();

    const second = await spawnSender(setup, { EMAIL_SEND_DAILY_CAPS: '10' });
    await arrived(setup.sink, [sent.send_id, ...fresh.map((r) => r.send_id)]);
    await drained(setup.dc);
    await settle();
    assert.equal(setup.sink.received.length, 4);
    for (const [id, n] of copies(setup.sink)) assert.equal(n, 1, `${id} arrived ${n} times`);
    await second.stop();
  });
});

describe('email sender, daily budget shared through Postgres', () => {
  test('two processes taking slots at once never pass the cap together, and unused slots go back', async () => {
    const schema = `email_${uniqueDc()}`;
    const pool = createPool({ url: DEFAULT_DATABASE_URL, schema, applicationName: 'test', log: quietLog });
    cleanups.push(async () => {
      await pool.end();
      await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    });
    await migrate(pool, {
      schema,
      dir: join(import.meta.dirname, '..', '..', 'services', 'email', 'migrations'),
      log: quietLog,
    });
    const [a, b] = [createDailyBudget(pool, 7), createDailyBudget(pool, 7)];
    const takes = await Promise.all(
      Array.from({ length: 60 }, (_, i) => ((i % 2 === 0 ? a : b) as typeof a).take(0, 40)),
    );
    const taken = takes.filter(Boolean).length;
    // One process may still hold a few reserved slots the other was refused: fewer, never more.
    assert.ok(taken <= 40 && taken > 40 - 7, `${taken} slots taken`);
    assert.equal(await sentOnDay(pool, 0), 40);
    await a.release();
    await b.release();
    assert.equal(await sentOnDay(pool, 0), taken, 'after release the count is the real sends');

    const c = createDailyBudget(pool, 7);
    const d = createDailyBudget(pool, 7);
    assert.equal(await c.take(1, 100), true);
    assert.equal(await d.take(1, 100), true);
    assert.equal(await sentOnDay(pool, 1), 14, 'each reserved a few at once');
    c.giveBack(1);
    await c.release();
    await d.release();
    assert.equal(await sentOnDay(pool, 1), 1, 'only the send that was not given back still counts');
  });
});

describe('email sender, DKIM', () => {
  /** An RSA key in a file, as an operator would mount it. */
  async function keyFile(dir: string, selector: string): Promise<string> {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const path = join(dir, `${selector}.pem`);
    await writeFile(path, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    return `${selector}:${path}`;
  }

  /** The records `tidings dkim dns` printed, served as DNS would: TXT lookups only, NXDOMAIN otherwise. */
  async function publishedRecords(keys: string): Promise<Map<string, string[]>> {
    const run = await runTidings('-o', 'json', 'dkim', 'dns', '--domain', DKIM_DOMAIN, '--keys', keys);
    assert.equal(run.status, 0, run.stderr);
    const records = JSON.parse(run.stdout) as { name: string; type: string; strings: string[] }[];
    return new Map(records.map((r) => [r.name, r.strings]));
  }
  const resolverFor = (zone: ReadonlyMap<string, string[]>) => async (name: string, type: string) => {
    const strings = zone.get(name);
    if (type === 'TXT' && strings) return [strings];
    throw Object.assign(new Error(`queryTxt ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
  };
  async function dkimResult(mail: Buffer, zone: ReadonlyMap<string, string[]>) {
    // Strict: RFC 6376 as written, a body hash mismatch is a fail rather than mailauth's lenient neutral.
    const { results } = await dkimVerify(mail, { resolver: resolverFor(zone), strict: true });
    assert.equal(results.length, 1, 'one signature');
    const [result] = results;
    return {
      result: result?.status.result,
      selector: result?.selector,
      domain: result?.signingDomain,
      aligned: result?.status.aligned,
    };
  }

  const DKIM_DOMAIN = 'mail.example.org';
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tidings-dkim-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
  });

  test('mail signed before, during and after a rotation passes an independent verifier; an altered body fails', async () => {
    const setup = await setUp();
    const old = await keyFile(dir, 's2026a');
    const next = await keyFile(dir, 's2026b');
    const mailOf = (record: NotifyEmailSendInput) => {
      const mail = setup.sink.received.find((m) => sendIdOf(m) === record.send_id);
      assert.ok(mail, `${record.send_id} arrived`);
      return mail.raw;
    };

    // Before: the old selector signs alone.
    let sender = await spawnSender(setup, { DKIM_DOMAIN, DKIM_KEYS: old });
    const signedOld = emailSend('signedOld@example.org');
    await publish(setup, [signedOld]);
    await arrived(setup.sink, [signedOld.send_id]);
    await sender.stop();
    // During: the new selector is published and signs; the old one stays in the ring (and in DNS).
    const rotating = `${next},${old}`;
    sender = await spawnSender(setup, { DKIM_DOMAIN, DKIM_KEYS: rotating });
    const signedNew = emailSend('signedNew@example.org');
    await publish(setup, [signedNew]);
    await arrived(setup.sink, [signedNew.send_id]);
    await sender.stop();

    const zone = await publishedRecords(rotating);
    assert.deepEqual(
      [...zone.keys()],
      [`s2026b._domainkey.${DKIM_DOMAIN}`, `s2026a._domainkey.${DKIM_DOMAIN}`],
    );
    assert.deepEqual(await dkimResult(mailOf(signedOld), zone), {
      result: 'pass',
      selector: 's2026a',
      domain: DKIM_DOMAIN,
      aligned: DKIM_DOMAIN,
    });
    assert.deepEqual(await dkimResult(mailOf(signedNew), zone), {
      result: 'pass',
      selector: 's2026b',
      domain: DKIM_DOMAIN,
      aligned: DKIM_DOMAIN,
    });
    // After: the old selector's record is withdrawn; new mail is signed by the new one only.
    const withdrawn = await publishedRecords(next);
    assert.equal((await dkimResult(mailOf(signedNew), withdrawn)).result, 'pass');
    assert.notEqual(
      (await dkimResult(mailOf(signedOld), withdrawn)).result,
      'pass',
      'withdrawn too early: mail the old key signed no longer verifies',
    );

    // Altered in transit: one word of the body changed.
    const raw = mailOf(signedNew).toString('latin1');
    const split = raw.indexOf('\r\n\r\n');
    const altered = raw.slice(0, split) + raw.slice(split).replace('Hello', 'Hallo');
    assert.notEqual(altered, raw);
    assert.equal((await dkimResult(Buffer.from(altered, 'latin1'), zone)).result, 'fail');
  });

  test('a misaligned DKIM domain or return path is named at start-up', async () => {
    const setup = await setUp();
    const sender = await spawnSender(setup, {
      DKIM_DOMAIN: 'mail.example.net',
      DKIM_KEYS: await keyFile(dir, 'misaligned'),
      VERP_DOMAIN: 'bounces.example.com',
      EMAIL_FROM: FROM,
    });
    await eventually(
      () =>
        sender.output().includes('does not align with the From domain mail.example.org') ? true : undefined,
      'the start-up warnings',
    );
    assert.match(sender.output(), /DKIM d=mail\.example\.net does not align/);
    assert.match(sender.output(), /return-path domain bounces\.example\.com does not align/);
    await sender.stop();
  });
});
