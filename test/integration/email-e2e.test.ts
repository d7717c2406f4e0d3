/**
 * The whole mail path as a person sees it, with the router and both sides of the email service as
 * processes and a real SMTP server: an event becomes a mail with one-click unsubscribe headers and
 * a VERP return path; a POST to the link in the mail (what Gmail's "unsubscribe" button sends)
 * turns that category off in the router, and the next notification of it is not mailed while
 * other categories still are.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { DEFAULT_DATABASE_URL } from '../../libs/config/common.ts';
import { topicFor } from '../../libs/kafka/topics.ts';
import { parseVerpKeyring, verifyReturnPath } from '../../libs/mail/verp.ts';
import { headerValues, type SmtpSink, startSmtpSink } from '../smtp-sink/sink.ts';
import {
  applyTestTopicPlan,
  deleteDcTopics,
  eventually,
  freePort,
  readTopic,
  spawnService,
  stopServices,
  testKafka,
  testPublisher,
  uniqueDc,
} from './harness.ts';

const kafka = testKafka('eqiad');
const db = new pg.Pool({ connectionString: DEFAULT_DATABASE_URL, max: 2 });
const dc = uniqueDc();
const schemas = { router: `router_${dc}`, email: `email_${dc}` };
const publisher = testPublisher(dc, 'test');
const secret = (fill: number) => Buffer.alloc(32, fill).toString('base64');
const VERP_KEYS = `2:${secret(7)}`;
const VERP_DOMAIN = 'bounces.e2e.example.org';
let sink: SmtpSink;

async function start(service: 'router' | 'email', extra: Record<string, string>): Promise<void> {
  await spawnService(service, dc, {
    DATABASE_SCHEMA: schemas[service],
    LOG_LEVEL: 'error',
    CONSUMER_SESSION_TIMEOUT: '6s',
    ...extra,
  });
}

before(async () => {
  sink = await startSmtpSink();
  await applyTestTopicPlan(kafka, dc, { services: ['router', 'email'] });
  await start('router', {});
  const unsubscribePort = await freePort();
  await start('email', {
    SMTP_URL: `smtp://127.0.0.1:${sink.port}`,
    VERP_DOMAIN,
    VERP_KEYS,
    EMAIL_UNSUBSCRIBE_KEYS: `k1:${secret(9)}`,
    EMAIL_UNSUBSCRIBE_PORT: String(unsubscribePort),
    EMAIL_UNSUBSCRIBE_URL: `http://127.0.0.1:${unsubscribePort}/unsubscribe`,
  });
});

after(async () => {
  await stopServices();
  await publisher.close();
  await sink.stop();
  await deleteDcTopics(kafka, dc);
  for (const schema of Object.values(schemas)) await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await db.end();
});

const mailsTo = (address: string) => sink.received.filter((mail) => mail.rcptTo.includes(address));

function event(id: string, category: string, recipient: string) {
  return {
    stream: 'notify.event' as const,
    record: { event_id: id, type: category, category, recipients: [recipient], title: `${category} ${id}` },
  };
}

test('a mentioned person gets a mail, unsubscribes with one click, and gets no more mentions', async () => {
  const user = `erin-${dc}`;
  const address = `${user}@example.org`;
  await publisher.publishMany([
    { stream: 'notify.user', record: { user_id: user, email: address, last_active: Date.now() } },
  ]);
  await eventually(
    async () => {
      const { rows } = await db
        .query(`SELECT 1 FROM ${schemas.router}.users WHERE user_id = $1`, [user])
        .catch(() => ({ rows: [] }));
      return rows.length === 1 ? true : undefined;
    },
    'the router to know the person',
    60_000,
  );

  await publisher.publishMany([event(`${dc}-m1`, 'mention', user)]);
  const first = await eventually(() => mailsTo(address)[0], 'the first mention mail', 60_000);
  assert.match(headerValues(first, 'message-id')[0] ?? '', /^<[0-9a-f]{32}@/);
  assert.deepEqual(headerValues(first, 'list-unsubscribe-post'), ['List-Unsubscribe=One-Click']);
  const verp = verifyReturnPath(first.mailFrom, parseVerpKeyring(VERP_KEYS).keys, {
    now: Date.now(),
    maxAgeMs: 60_000,
    domain: VERP_DOMAIN,
  });
  assert.ok(verp.ok, `the envelope sender ${first.mailFrom} is a return path we signed`);
  const link = /<(http[^>]+)>/.exec(headerValues(first, 'list-unsubscribe')[0] ?? '')?.[1];
  assert.ok(link, 'List-Unsubscribe carries an http(s) link');

  // What a mailbox provider sends for its unsubscribe button (RFC 8058).
  const response = await fetch(link, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'List-Unsubscribe=One-Click',
  });
  assert.equal(response.status, 200);
  await eventually(
    async () => {
      const { rows } = await db.query<{ enabled: boolean }>(
        `SELECT enabled FROM ${schemas.router}.preference_changes WHERE user_id = $1 AND channel = 'email' AND category = 'mention'`,
        [user],
      );
      return rows[0]?.enabled === false ? true : undefined;
    },
    'the router to apply the unsubscribe',
    60_000,
  );

  // A mention, decided once its web notification is out (the router emits all of an event's
  // channels together); then a mail of a category still on. Channel topics are keyed by person, so
  // once that later mail arrives, a mention mail would have arrived before it.
  await publisher.publishMany([event(`${dc}-m2`, 'mention', user)]);
  await readTopic(kafka, topicFor(dc, 'notify.web'), (records) => records.length >= 2, 60_000);
  await publisher.publishMany([event(`${dc}-r1`, 'user-rights', user)]);
  await eventually(
    () => (mailsTo(address).some((mail) => mail.parsed?.subject?.includes('user-rights')) ? true : undefined),
    'the mail of the category still on',
    60_000,
  );
  const mentions = mailsTo(address).filter((mail) => !mail.parsed?.subject?.includes('user-rights'));
  assert.equal(mentions.length, 1, 'no mention is mailed after the one-click unsubscribe');
});
