/**
 * services/bounce as a process against the real stack, fed over real SMTP (nodemailer to the
 * receiver) with corpus samples whose addresses are swapped for this run's and sent to return paths
 * signed with this run's VERP key: a DSN suppresses, soft bounces suppress only at the threshold and
 * are released after the cool-down, an ARF complaint suppresses and turns email off, forged return
 * paths are refused at RCPT TO, an unreadable report is dead-lettered while the receiver keeps
 * working, the webhook checks its signature, and an operator lists and lifts suppressions.
 *
 * One process serves the whole file (its own datacenter and database schema); tests use distinct
 * addresses. The cool-down is an hour, so only the test's sweep, run with a clock an hour ahead,
 * can release anything: that is the driven clock.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { KafkaMessage } from 'kafkajs';
import nodemailer from 'nodemailer';
import pg from 'pg';
import { DEFAULT_DATABASE_URL } from '../../libs/config/common.ts';
import { createPool } from '../../libs/db/pool.ts';
import { createProducer } from '../../libs/kafka/client.ts';
import { HEADER, headerString } from '../../libs/kafka/record-headers.ts';
import { dlqTopic, topicFor } from '../../libs/kafka/topics.ts';
import { addressHash, parseVerpKeyring, returnPath } from '../../libs/mail/verp.ts';
import { createSerde } from '../../libs/schemas/serde.ts';
import type {
  NotifyBounce,
  NotifyEmailSendInput,
  NotifyPreferenceChange,
  NotifySuppression,
} from '../../libs/schemas/types.generated.ts';
import { createRecordSender } from '../../services/bounce/record-sender.ts';
import { releaseDue } from '../../services/bounce/suppression-ledger.ts';
import { signWebhook } from '../../services/bounce/webhook.ts';
import { startSmtpSink } from '../smtp-sink/sink.ts';
import {
  applyTestTopicPlan,
  deleteDcTopics,
  eventually,
  freePort,
  metricValue,
  quietLog,
  REGISTRY_URL,
  readTopic,
  retryDelaysVar,
  startService,
  stopServices,
  testKafka,
  testPublisher,
  traceStories,
  uniqueDc,
  withAdmin,
} from './harness.ts';

const kafka = testKafka('eqiad');
const serde = createSerde({ registryUrl: REGISTRY_URL });
const admin = new pg.Pool({ connectionString: DEFAULT_DATABASE_URL, max: 1 });

const DOMAIN = 'bounce.tidings.test';
const VERP_KEYS = `3:${randomBytes(32).toString('base64')}`;
const keyring = parseVerpKeyring(VERP_KEYS);
const WEBHOOK_SECRET = randomBytes(24).toString('hex');
const ADMIN_TOKEN = randomBytes(24).toString('hex');
const HOUR = 3_600_000;
const SOFT_THRESHOLD = 3;
const RETRY_DELAYS_MS = [200];

const dc = uniqueDc();
const schema = `bounce_${dc}`;
const run = randomBytes(3).toString('hex');
const ports = { ops: 0, smtp: 0, webhook: 0, admin: 0 };

before(async () => {
  // The end-to-end test runs an email sender in this datacenter too.
  await applyTestTopicPlan(kafka, dc, { services: ['bounce', 'email'], retryDelaysMs: RETRY_DELAYS_MS });
  for (const name of Object.keys(ports) as (keyof typeof ports)[]) ports[name] = await freePort();
  await startService(
    'bounce',
    dc,
    {
      DATABASE_SCHEMA: schema,
      CONSUMER_SESSION_TIMEOUT: '6s',
      CHECKPOINT_INTERVAL: '500ms',
      RETRY_DELAYS: retryDelaysVar(RETRY_DELAYS_MS),
      VERP_DOMAIN: DOMAIN,
      VERP_KEYS,
      BOUNCE_SMTP_PORT: String(ports.smtp),
      BOUNCE_WEBHOOK_PORT: String(ports.webhook),
      BOUNCE_WEBHOOK_SECRETS: WEBHOOK_SECRET,
      BOUNCE_ADMIN_PORT: String(ports.admin),
      BOUNCE_ADMIN_TOKEN: ADMIN_TOKEN,
      BOUNCE_SOFT_THRESHOLD: String(SOFT_THRESHOLD),
      BOUNCE_SOFT_WINDOW: '1h',
      BOUNCE_SOFT_COOLDOWN: '1h',
    },
    { port: ports.ops },
  );
});

after(async () => {
  await stopServices();
  await deleteDcTopics(kafka, dc).catch(() => undefined);
  await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await admin.end();
});

/** An address of this run, so reruns never meet old state. */
const address = (name: string) => `${name}-${run}@example.com`;

/** A return path signed as the sender signs it: for this message id and this recipient. */
const verp = (recipient: string, sendId: string = randomBytes(16).toString('hex')) =>
  returnPath({ messageId: sendId, recipient, domain: DOMAIN, now: Date.now() }, keyring);

const fixture = (file: string) =>
  readFileSync(join(import.meta.dirname, '..', 'fixtures', 'bounces', file), 'utf8');

/** A corpus sample with its recipient swapped for ours. */
function sample(file: string, from: string, to: string): string {
  const raw = fixture(file);
  assert.ok(raw.includes(from), `${file} names ${from}`);
  return raw.replaceAll(from, to);
}

/** Delivers raw mail to the receiver over SMTP with a null reverse path, as MTAs send bounces. */
async function deliver(rcpt: string, raw: string) {
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port: ports.smtp,
    secure: false,
    ignoreTLS: true,
  });
  try {
    return await transport.sendMail({ envelope: { from: '', to: [rcpt] }, raw });
  } finally {
    transport.close();
  }
}

async function decoded<T>(stream: Parameters<typeof serde.decode>[0], message: KafkaMessage): Promise<T> {
  return (await serde.decode(stream, message.value!)) as T;
}

/** The records of a topic for one key, once `until` holds for them. */
async function recordsFor(
  stream: string,
  key: string,
  until: (messages: KafkaMessage[]) => boolean,
): Promise<KafkaMessage[]> {
  const mine = (ms: KafkaMessage[]) => ms.filter((m) => m.key?.toString() === key);
  return mine(await readTopic(kafka, topicFor(dc, stream), (ms) => until(mine(ms))));
}

/** Every record a topic holds right now. */
async function allRecords(stream: string): Promise<KafkaMessage[]> {
  const topic = topicFor(dc, stream);
  const offsets = await withAdmin(kafka, (a) => a.fetchTopicOffsets(topic));
  const total = offsets.reduce((sum, o) => sum + Number(o.high) - Number(o.low), 0);
  return total === 0 ? [] : readTopic(kafka, topic, (ms) => ms.length >= total);
}

const suppressionsOf = (hash: string, n = 1) =>
  recordsFor('notify.suppression', hash, (ms) => ms.length >= n);

/** The service's own view of an address, straight from its tables. */
async function state(hash: string) {
  const { rows } = await admin.query<{ reason: string | null; soft: number }>(
    `SELECT reason, cardinality(soft_bounces) AS soft FROM ${schema}.addresses WHERE address_hash = $1`,
    [hash],
  );
  return rows[0];
}

test('a DSN sent over SMTP becomes a notify.bounce record and suppresses the address', async () => {
  const to = address('alice');
  const sendId = randomBytes(16).toString('hex');
  const info = await deliver(verp(to, sendId), sample('postfix-user-unknown.eml', 'alice@example.com', to));
  assert.match(info.response, /^250 /);

  const hash = addressHash(to);
  const [bounceMessage] = await recordsFor('notify.bounce', hash, (ms) => ms.length >= 1);
  const bounce = await decoded<NotifyBounce>('notify.bounce', bounceMessage!);
  assert.equal(bounce.address, to);
  assert.equal(bounce.kind, 'hard');
  assert.equal(bounce.status, '5.1.1');
  assert.equal(bounce.smtp_code, 550);
  assert.equal(bounce.send_id, sendId, 'the send id comes from the verified VERP token');
  assert.equal(bounce.source, 'smtp_dsn');
  assert.equal(bounce.sending_domain, 'tidings.example.org');

  const [suppressionMessage] = await suppressionsOf(hash);
  const suppression = await decoded<NotifySuppression>('notify.suppression', suppressionMessage!);
  assert.equal(suppression.reason, 'hard_bounce');
  assert.equal(suppression.until, null, 'a hard bounce suppresses until lifted');
  assert.equal(suppression.address, to);
  assert.match(suppression.detail ?? '', /5\.1\.1/);
});

test('the trail tells a bounce and the suppression it caused on every notification the message carried', async () => {
  const to = address('trudy');
  const sendId = randomBytes(16).toString('hex');
  const notifications = [randomUUID(), randomUUID()];
  // What the sender tells the trail once the relay took a digest of two notifications.
  const sender = testPublisher(dc, 'email');
  await sender.publishMany(
    notifications.map((id) => ({
      stream: 'notify.status' as const,
      record: {
        event_id: `e-${id}`,
        notification_id: id,
        recipient_id: `trudy-${run}`,
        channel: 'email' as const,
        stage: 'sender' as const,
        outcome: 'accepted' as const,
        ref: sendId,
        detail: '250 2.0.0 Ok: queued',
        at: Date.now(),
      },
    })),
  );
  await sender.close();
  // The bounce stage learns the message once it has read the sender's records.
  await eventually(async () => {
    const { rows } = await admin.query(`SELECT 1 FROM ${schema}.sent_mail WHERE send_id = $1`, [sendId]);
    return rows.length === 2 ? true : undefined;
  }, 'bounce to learn which notifications the message carried');

  await deliver(verp(to, sendId), sample('postfix-user-unknown.eml', 'alice@example.com', to));
  const stories = await eventually(async () => {
    const told = await traceStories(dc, '--user', `trudy-${run}`);
    return told.every((s) => s.steps.length === 3) && told.length === 2 ? told : undefined;
  }, 'the bounce on the trail');
  const [bounceMessage] = await recordsFor('notify.bounce', addressHash(to), (ms) => ms.length >= 1);
  const report = (await decoded<NotifyBounce>('notify.bounce', bounceMessage!)).meta.id;
  for (const story of stories) {
    assert.ok((notifications as string[]).includes(story.notification_id!));
    assert.deepEqual(
      story.steps.map((step) => [step.stage, step.outcome, step.reason, step.ref]),
      [
        ['sender', 'accepted', null, sendId],
        ['bounce', 'bounced', 'hard-bounce', report],
        ['bounce', 'suppressed', 'hard-bounce', report],
      ],
    );
    assert.equal(story.state.summary, 'not delivered: suppressed, hard-bounce');
  }
});

test('a DSN to a forged or foreign return path is refused at RCPT TO and counted', async () => {
  const to = address('mallory');
  const raw = sample('postfix-user-unknown.eml', 'alice@example.com', to);
  const genuine = verp(to);
  const [local, domain] = genuine.split('@') as [string, string];
  // Flip one character of the token's MAC. Not the last character: it can carry base32 padding
  // bits, and flipping those makes the token malformed rather than forged.
  const flipped = local.at(-2) === 'a' ? 'b' : 'a';
  const forged = `${local.slice(0, -2)}${flipped}${local.at(-1)}@${domain}`;
  const before = await metricValue(ports.ops, 'tidings_bounce_smtp_refused_total', { reason: 'forged' });

  await assert.rejects(deliver(forged, raw), (error: { responseCode?: number }) => {
    assert.equal(error.responseCode, 550);
    return true;
  });
  await assert.rejects(deliver(`${local}@elsewhere.example`, raw), (error: { responseCode?: number }) => {
    assert.equal(error.responseCode, 550);
    return true;
  });

  assert.equal(
    await metricValue(ports.ops, 'tidings_bounce_smtp_refused_total', { reason: 'forged' }),
    before + 1,
  );
  assert.ok(
    (await metricValue(ports.ops, 'tidings_bounce_smtp_refused_total', { reason: 'foreign-domain' })) >= 1,
  );
  assert.equal(await state(addressHash(to)), undefined, 'nothing was recorded about the address');
});

test('soft bounces suppress only at the threshold and are released after the cool-down', async () => {
  const to = address('bob');
  const hash = addressHash(to);
  const soft = () => deliver(verp(to), sample('postfix-mailbox-full.eml', 'bob@example.net', to));

  for (let i = 1; i < SOFT_THRESHOLD; i++) await soft();
  // Once the service has counted them, a suppression would already be in Kafka: it is published
  // before the state that counts the bounce is committed.
  await eventually(
    async () => ((await state(hash))?.soft === SOFT_THRESHOLD - 1 ? true : undefined),
    'the soft bounces below the threshold to be counted',
  );
  assert.equal((await state(hash))?.reason, null);
  const early = await allRecords('notify.suppression');
  assert.equal(
    early.filter((m) => m.key?.toString() === hash).length,
    0,
    'below the threshold: no suppression',
  );

  await soft();
  const [suppressionMessage] = await suppressionsOf(hash);
  const suppression = await decoded<NotifySuppression>('notify.suppression', suppressionMessage!);
  assert.equal(suppression.reason, 'soft_bounce');
  assert.ok(
    suppression.until !== null && suppression.until > Date.now(),
    'suppressed until the cool-down ends',
  );

  // The driven clock: the sweep the service runs, run here an hour and a minute ahead.
  const producer = createProducer(kafka);
  await producer.connect();
  const db = createPool({ url: DEFAULT_DATABASE_URL, schema, applicationName: 'bounce-test' });
  try {
    const deps = {
      db,
      sender: createRecordSender(producer, serde, dc),
      dc,
      policy: { softThreshold: SOFT_THRESHOLD, softWindowMs: HOUR, softCooldownMs: HOUR },
      log: quietLog,
      peopleAt: async () => [],
    };
    assert.equal(await releaseDue(deps, Date.now()), 0, 'nothing is due before the cool-down ends');
    assert.ok((await releaseDue(deps, Date.now() + HOUR + 60_000)) >= 1);
  } finally {
    await producer.disconnect();
    await db.end();
  }
  const records = await suppressionsOf(hash, 2);
  assert.equal(records.at(-1)?.value, null, 'the release is a tombstone');
  assert.deepEqual(await state(hash), { reason: null, soft: 0 }, 'released with a clean count');
});

/** Publishes a person on notify.user and waits until bounce has materialized them. */
async function person(userId: string, email: string): Promise<void> {
  const publisher = testPublisher(dc, 'test');
  try {
    await publisher.publish('notify.user', { user_id: userId, email });
  } finally {
    await publisher.close();
  }
  await eventually(async () => {
    const { rows } = await admin.query(`SELECT 1 FROM ${schema}.people WHERE user_id = $1`, [userId]);
    return rows.length === 1 ? true : undefined;
  }, 'the person to be materialized');
}

test('an ARF complaint suppresses the address and turns off the email of its person, never of a person the report names', async () => {
  const to = address('carol');
  const userId = `u-carol-${run}`;
  const victim = `u-victim-${run}`;
  await person(userId, to);
  // The attack: a complaint about mail the attacker received, its returned headers naming someone else.
  const raw = sample('arf-yahoo.eml', 'carol@yahoo.com', to).replace(
    'X-Tidings-Recipient: u3',
    `X-Tidings-Recipient: ${victim}`,
  );
  await deliver(verp(to), raw);

  const hash = addressHash(to);
  const [suppressionMessage] = await suppressionsOf(hash);
  const suppression = await decoded<NotifySuppression>('notify.suppression', suppressionMessage!);
  assert.equal(suppression.reason, 'complaint');
  assert.equal(suppression.until, null);

  const [changeMessage] = await recordsFor('notify.preference-change', userId, (ms) => ms.length >= 1);
  const change = await decoded<NotifyPreferenceChange>('notify.preference-change', changeMessage!);
  assert.deepEqual(
    {
      user_id: change.user_id,
      channel: change.channel,
      category: change.category,
      enabled: change.enabled,
      reason: change.reason,
    },
    { user_id: userId, channel: 'email', category: null, enabled: false, reason: 'complaint' },
  );
  // One transition's records go out in one acknowledged send: the victim's would be there by now.
  const changes = await allRecords('notify.preference-change');
  assert.deepEqual(
    changes.filter((m) => m.key?.toString() === victim),
    [],
    'the person named by the report is left alone',
  );
  const [bounceMessage] = await recordsFor('notify.bounce', hash, (ms) => ms.length >= 1);
  const bounce = await decoded<NotifyBounce>('notify.bounce', bounceMessage!);
  assert.deepEqual([bounce.source, bounce.recipient_id], ['arf', null]);
});

test('a complaint that does not name its person turns off email for the people notify.user has at the address', async () => {
  const to = address('judy');
  const userId = `u-judy-${run}`;
  await person(userId, to.toUpperCase());

  const raw = sample('arf-yahoo.eml', 'carol@yahoo.com', to).replace(/^X-Tidings-Recipient: .*\r?\n/m, '');
  assert.doesNotMatch(raw, /X-Tidings-Recipient/);
  await deliver(verp(to), raw);

  const [changeMessage] = await recordsFor('notify.preference-change', userId, (ms) => ms.length >= 1);
  const change = await decoded<NotifyPreferenceChange>('notify.preference-change', changeMessage!);
  assert.deepEqual([change.channel, change.enabled, change.reason], ['email', false, 'complaint']);
});

test('an unreadable report goes to the receiver DLQ with its reason, and the next DSN is processed', async () => {
  const to = address('dora');
  const junk = fixture('malformed-not-a-report.eml');
  const info = await deliver(verp(to), junk);
  assert.match(info.response, /^250 /, 'kept in the DLQ, so accepted');

  const topic = dlqTopic(dc, 'notify.bounce', 'bounce-smtp');
  const [letter] = await readTopic(kafka, topic, (ms) => ms.length >= 1);
  assert.equal(headerString(letter!.headers, HEADER.errorKind), 'unrecognized');
  assert.ok(headerString(letter!.headers, HEADER.errorMessage));
  const normalized = (text: string) => text.replaceAll('\r\n', '\n').trimEnd();
  assert.equal(normalized(letter!.value!.toString('utf8')), normalized(junk), 'the raw mail is kept');

  const next = address('erin');
  await deliver(verp(next), sample('postfix-user-unknown.eml', 'alice@example.com', next));
  const [suppressionMessage] = await suppressionsOf(addressHash(next));
  assert.equal(
    (await decoded<NotifySuppression>('notify.suppression', suppressionMessage!)).reason,
    'hard_bounce',
  );
});

test('the webhook refuses a bad signature, turns a signed notification into a bounce, and refuses its replay', async () => {
  const to = address('frank');
  const body = JSON.stringify({
    notificationType: 'Bounce',
    bounce: {
      bounceType: 'Permanent',
      bouncedRecipients: [
        { emailAddress: to, status: '5.1.1', diagnosticCode: 'smtp; 550 5.1.1 no such user' },
      ],
    },
    mail: { messageId: randomUUID(), source: 'wiki@tidings.example.org', destination: [to] },
  });
  const post = (signature: string | null) =>
    fetch(`http://127.0.0.1:${ports.webhook}/webhook`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(signature ? { 'x-tidings-signature': signature } : {}),
      },
      body,
    });

  assert.equal((await post(signWebhook(body, 'not-the-secret', Date.now()))).status, 401);
  assert.equal((await post(null)).status, 401);
  assert.equal(await state(addressHash(to)), undefined, 'a refused webhook records nothing');
  assert.ok(
    (await metricValue(ports.ops, 'tidings_bounce_webhook_requests_total', { outcome: 'bad-signature' })) >=
      1,
  );

  const signature = signWebhook(body, WEBHOOK_SECRET, Date.now());
  const accepted = await post(signature);
  assert.equal(accepted.status, 200);
  // The attack: the same signed request again, well within its tolerance window.
  const replayed = await post(signature);
  assert.equal(replayed.status, 401);
  assert.doesNotMatch(await replayed.text(), /replay/, 'the reply does not say why');
  assert.ok(
    (await metricValue(ports.ops, 'tidings_bounce_webhook_requests_total', { outcome: 'replayed' })) >= 1,
  );
  const hash = addressHash(to);
  const [bounceMessage] = await recordsFor('notify.bounce', hash, (ms) => ms.length >= 1);
  const bounce = await decoded<NotifyBounce>('notify.bounce', bounceMessage!);
  assert.equal(bounce.source, 'webhook');
  assert.equal(bounce.kind, 'hard');
  assert.equal(bounce.sending_domain, 'tidings.example.org');
  const [suppressionMessage] = await suppressionsOf(hash);
  assert.equal(
    (await decoded<NotifySuppression>('notify.suppression', suppressionMessage!)).reason,
    'hard_bounce',
  );
  const bounces = await allRecords('notify.bounce');
  assert.equal(bounces.filter((m) => m.key?.toString() === hash).length, 1, 'the replay recorded nothing');
});

test('an operator lists suppressions and lifts one: tombstone published, state reset', async () => {
  const to = address('grace');
  const hash = addressHash(to);
  await deliver(verp(to), sample('postfix-user-unknown.eml', 'alice@example.com', to));
  await suppressionsOf(hash);
  await eventually(async () => ((await state(hash))?.reason === 'hard_bounce' ? true : undefined), 'state');

  const call = (method: string, path: string, token: string | null = ADMIN_TOKEN) =>
    fetch(`http://127.0.0.1:${ports.admin}${path}`, {
      method,
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
  assert.equal((await call('GET', '/suppressions', null)).status, 401);
  assert.equal((await call('GET', '/suppressions', 'wrong-token-wrong-token')).status, 401);

  const listed = (await (await call('GET', '/suppressions?reason=hard_bounce&limit=1000')).json()) as {
    suppressions: { address_hash: string; address: string; reason: string; until: string | null }[];
  };
  const mine = listed.suppressions.find((s) => s.address_hash === hash);
  assert.deepEqual(mine && { address: mine.address, reason: mine.reason, until: mine.until }, {
    address: to,
    reason: 'hard_bounce',
    until: null,
  });

  const lifted = await call('DELETE', `/suppressions/${encodeURIComponent(to)}`);
  assert.equal(lifted.status, 200);
  const records = await suppressionsOf(hash, 2);
  assert.equal(records.at(-1)?.value, null, 'lifting publishes a tombstone');
  assert.deepEqual(await state(hash), { reason: null, soft: 0 });
  assert.equal((await call('DELETE', `/suppressions/${hash}`)).status, 404, 'nothing left to lift');
});

test("the sender's own records are applied too, and a redelivered record is not counted twice", async () => {
  const to = address('heidi');
  const hash = addressHash(to);
  const record = (id: string) => ({
    stream: 'notify.bounce' as const,
    key: hash,
    value: {
      meta: { id, dt: Date.now(), stream: 'notify.bounce', dc, producer: 'email', request_id: null },
      address_hash: hash,
      address: to,
      kind: 'soft' as const,
      status: '4.2.2',
      smtp_code: 452,
      diagnostic: 'mailbox full',
      source: 'sender' as const,
      sending_domain: 'tidings.example.org',
    },
  });
  const first = randomUUID();
  const last = randomUUID();
  const producer = createProducer(kafka);
  await producer.connect();
  try {
    // The same record twice, as after a crash between its state commit and its offset commit.
    await createRecordSender(producer, serde, dc).send([record(first), record(first), record(last)]);
  } finally {
    await producer.disconnect();
  }
  await eventually(async () => {
    const { rows } = await admin.query(`SELECT 1 FROM ${schema}.applied_bounces WHERE bounce_id = $1`, [
      last,
    ]);
    return rows.length === 1 ? true : undefined;
  }, 'the last record to be applied');
  assert.deepEqual(await state(hash), { reason: null, soft: 2 });
});

test('end to end: a DSN for mail the email sender sent suppresses the address, and the sender then skips it', async () => {
  const sink = await startSmtpSink();
  const emailSchema = `email_${dc}`;
  const email = await startService('email', dc, {
    EMAIL_SIDES: 'sender',
    DATABASE_SCHEMA: emailSchema,
    RETRY_DELAYS: retryDelaysVar(RETRY_DELAYS_MS),
    CONSUMER_SESSION_TIMEOUT: '6s',
    CHECKPOINT_INTERVAL: '500ms',
    SMTP_URL: `smtp://${sink.host}:${sink.port}`,
    VERP_DOMAIN: DOMAIN,
    VERP_KEYS,
  });
  const emailPort = email.port;
  const publisher = testPublisher(dc, 'test');
  try {
    const to = address('ivan');
    const hash = addressHash(to);
    const notificationOf = new Map<string, string>();
    const mail = (sendId: string): NotifyEmailSendInput => {
      const id = randomUUID();
      notificationOf.set(sendId, id);
      return {
        meta: { dt: Date.now() },
        send_id: sendId,
        notification_ids: [id],
        event_ids: { [id]: `e-${id}` },
        recipient_id: `u-ivan-${run}`,
        to,
        from: 'Wiki <wiki@tidings.example.org>',
        subject: 'Someone left a message on your talk page',
        text: 'Hello',
        html: '<p>Hello</p>',
        headers: {},
        category: 'edit-user-talk',
        locale: 'en',
        kind: 'instant',
      } as NotifyEmailSendInput;
    };

    const firstId = randomBytes(16).toString('hex');
    await publisher.publish('notify.email-send', mail(firstId));
    const sent = await eventually(
      () => sink.received.find((m) => m.rcptTo.includes(to)),
      'the first mail to reach the SMTP sink',
    );

    // The mailbox provider bounces it to the return path the sender signed.
    const info = await deliver(sent.mailFrom, sample('postfix-user-unknown.eml', 'alice@example.com', to));
    assert.match(info.response, /^250 /);
    const [bounceMessage] = await recordsFor('notify.bounce', hash, (ms) => ms.length >= 1);
    assert.equal((await decoded<NotifyBounce>('notify.bounce', bounceMessage!)).send_id, firstId);
    await suppressionsOf(hash);
    await eventually(async () => {
      const { rows } = await admin.query(
        `SELECT 1 FROM ${emailSchema}.suppressions WHERE address_hash = $1`,
        [hash],
      );
      return rows.length === 1 ? true : undefined;
    }, 'the sender to learn the suppression');

    const suppressedBefore = await metricValue(emailPort, 'tidings_email_sender_messages_total', {
      outcome: 'suppressed',
    });
    const secondId = randomBytes(16).toString('hex');
    await publisher.publish('notify.email-send', mail(secondId));
    await eventually(
      async () =>
        (await metricValue(emailPort, 'tidings_email_sender_messages_total', { outcome: 'suppressed' })) >
        suppressedBefore
          ? true
          : undefined,
      'the sender to skip the second mail',
    );
    assert.equal(
      sink.received.filter((m) => m.rcptTo.includes(to)).length,
      1,
      'only the first mail went out',
    );

    // The trail tells both: the first accepted, bounced and the cause of the suppression; the
    // second suppressed by the sender.
    const storyOf = async (sendId: string) =>
      (await traceStories(dc, '--notification', notificationOf.get(sendId)!))[0]?.steps.map((step) =>
        [step.stage, step.outcome, step.reason].join(' '),
      );
    const first = await eventually(async () => {
      const steps = await storyOf(firstId);
      return steps?.length === 3 ? steps : undefined;
    }, "the first mail's story");
    assert.deepEqual(first, [
      'sender accepted ',
      'bounce bounced hard-bounce',
      'bounce suppressed hard-bounce',
    ]);
    assert.deepEqual(await eventually(() => storyOf(secondId), "the second mail's story"), [
      'sender suppressed address-suppressed',
    ]);
  } finally {
    await email.stop();
    await publisher.close();
    await sink.stop();
    await admin.query(`DROP SCHEMA IF EXISTS ${emailSchema} CASCADE`);
  }
});
