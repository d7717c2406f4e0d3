/**
 * The email sender (services/email/main.ts, EMAIL_SIDES=sender) at saturation against a local SMTP
 * sink, in a datacenter and Postgres schema of its own: each round publishes BENCH_EMAIL_MESSAGES
 * notify.email-send records (default 5,000, one recipient each) and is timed from the first publish
 * until the sink accepted all of them. Baseline in the same run and against the same sink: a raw
 * nodemailer pooled transport (same pool size) sending the same messages with 64 in flight. Both
 * take the median of 3 rounds after a warm-up; the goal is a sender/raw ratio of at least 0.8. A
 * sender with DELIVERY_TRAIL=false, its rounds alternating with the others' in the same run (each
 * sender round a fresh process after its warm-up), gives the trail's cost as a ratio.
 * Both sign every message with the same 2048-bit DKIM key through nodemailer's signer: mail that
 * providers accept costs that much, whoever sends it.
 */
import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { DEFAULT_DATABASE_URL } from '../../libs/config/common.ts';
import { createProducer, DURABLE_SEND } from '../../libs/kafka/client.ts';
import { topicFor } from '../../libs/kafka/topics.ts';
import { parseDkimKeyring } from '../../libs/mail/dkim.ts';
import { parseVerpKeyring, returnPath } from '../../libs/mail/verp.ts';
import { createSerde } from '../../libs/schemas/serde.ts';
import type { NotifyEmailSend } from '../../libs/schemas/types.generated.ts';
import { outgoingMail } from '../../services/email/outgoing-mail.ts';
import { createSmtpTransport } from '../../services/email/smtp-transport.ts';
import {
  applyTestTopicPlan,
  createStreamTopics,
  deleteDcTopics,
  eventually,
  freePort,
  REGISTRY_URL,
  serviceEnv,
  testKafka,
  uniqueDc,
} from '../integration/harness.ts';
import { startSmtpSink } from '../smtp-sink/sink.ts';
import { median, round } from './stats.ts';

const MESSAGES = Number(process.env.BENCH_EMAIL_MESSAGES ?? 5_000);
const ROUNDS = 3;
const POOL = 5;
const IN_FLIGHT = 64;
const PUBLISH_CHUNK = 1_000;
const VERP_KEYS = `1:${randomBytes(32).toString('base64')}`;
const VERP_DOMAIN = 'bounces.example.org';
const DKIM_DOMAIN = 'mail.example.org';

const metaFor = (dc: string) => ({
  id: randomUUID(),
  dt: Date.now(),
  stream: 'notify.email-send',
  dc,
  producer: 'bench',
  request_id: null,
});

function message(i: number): Omit<NotifyEmailSend, 'meta'> {
  const sendId = randomBytes(16).toString('hex');
  return {
    send_id: sendId,
    notification_ids: [randomUUID()],
    event_ids: {},
    recipient_id: `u${i}`,
    to: `person${i}@example.org`,
    from: 'Wiki <wiki@mail.example.org>',
    subject: 'Someone left a message on your talk page',
    text: `Hello,\n\nsomeone left a message on your talk page: https://example.org/wiki/User_talk:U${i}\n`.repeat(
      4,
    ),
    html: `<p>Hello,</p><p>someone left a <a href="https://example.org/wiki/User_talk:U${i}">message</a>.</p>`.repeat(
      4,
    ),
    headers: {
      'List-Unsubscribe': `<https://example.org/unsubscribe/${sendId}>`,
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
    },
    category: 'edit-user-talk',
    locale: 'en',
    kind: 'instant',
    delivery: 'at_least_once',
  };
}

export async function run(): Promise<Record<string, unknown>> {
  let accepted = 0;
  const sink = await startSmtpSink({
    parse: false,
    onMessage: () => {
      accepted++;
    },
  });
  const until = (count: number) =>
    eventually(() => (accepted >= count ? true : undefined), `${count} messages at the sink`, 600_000);
  const keyring = parseVerpKeyring(VERP_KEYS);
  const keyDir = await mkdtemp(join(tmpdir(), 'tidings-bench-dkim-'));
  const dkimKeys = `bench:${join(keyDir, 'bench.pem')}`;
  await writeFile(
    join(keyDir, 'bench.pem'),
    generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
  );
  const dkim = parseDkimKeyring(dkimKeys, DKIM_DOMAIN);

  async function rawRound(count: number): Promise<number> {
    const transport = createSmtpTransport({
      url: `smtp://${sink.host}:${sink.port}`,
      maxConnections: POOL,
      timeoutMs: 30_000,
      dkim,
    });
    const mails = Array.from({ length: count }, (_, i) => {
      const record = {
        meta: { id: '', dt: 0, stream: 'notify.email-send', dc: '', producer: '', request_id: null },
        ...message(i),
      } as NotifyEmailSend;
      return outgoingMail(
        record,
        returnPath(
          { messageId: record.send_id, recipient: record.to, domain: VERP_DOMAIN, now: Date.now() },
          keyring,
        ),
      );
    });
    const start = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < mails.length) {
          const mail = mails[next++];
          if (mail) await transport.send(mail);
        }
      }),
    );
    const seconds = (performance.now() - start) / 1000;
    transport.close();
    return count / seconds;
  }

  const kafka = testKafka('eqiad');
  const db = new pg.Pool({ connectionString: DEFAULT_DATABASE_URL, max: 2 });
  const serde = createSerde({ registryUrl: REGISTRY_URL });
  const producer = createProducer(kafka);
  const senders: { dc: string; schema: string; stop(): Promise<void> }[] = [];

  /** A sender process in a datacenter and schema of its own, with its trail on or off. */
  async function startSender(trail: boolean) {
    const dc = uniqueDc();
    const schema = `email_${dc}`;
    await createStreamTopics(
      kafka,
      dc,
      ['notify.suppression', 'notify.bounce', 'notify.erasure', 'notify.checkpoint', 'notify.status'],
      1,
    );
    await createStreamTopics(kafka, dc, ['notify.email-send'], 6);
    await applyTestTopicPlan(kafka, dc, { services: ['email'] });
    const port = await freePort();
    const child = spawn(
      process.execPath,
      [join(import.meta.dirname, '..', '..', 'services', 'email', 'main.ts')],
      {
        env: serviceEnv(dc, port, {
          EMAIL_SIDES: 'sender',
          DATABASE_SCHEMA: schema,
          SMTP_URL: `smtp://${sink.host}:${sink.port}`,
          SMTP_MAX_CONNECTIONS: String(POOL),
          VERP_DOMAIN,
          VERP_KEYS,
          DKIM_DOMAIN,
          DKIM_KEYS: dkimKeys,
          EMAIL_SEND_PER_SECOND: '1000000',
          EMAIL_SEND_BURST: '1000000',
          CONSUMER_CONCURRENCY: String(IN_FLIGHT),
          DELIVERY_TRAIL: String(trail),
        }),
        stdio: ['ignore', 'inherit', 'inherit'],
      },
    );
    const stop = async () => {
      if (child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    };
    senders.push({ dc, schema, stop });
    await eventually(
      async () => {
        const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
        return res?.status === 200 ? true : undefined;
      },
      'the email sender to be ready',
      60_000,
    );

    let published = 0;
    // Records are encoded before the clock starts: the sink shares this process, and encoding
    // while it receives would slow the sink down for the sender's rounds only.
    const timedRound = async (count: number): Promise<number> => {
      const encoded = await Promise.all(
        Array.from({ length: count }, async (_, i) => {
          const record = { meta: metaFor(dc), ...message(published + i) };
          return { key: record.recipient_id, value: await serde.encode('notify.email-send', record) };
        }),
      );
      published += count;
      const target = accepted + count;
      const start = performance.now();
      for (let i = 0; i < count; i += PUBLISH_CHUNK) {
        await producer.send({
          ...DURABLE_SEND,
          topic: topicFor(dc, 'notify.email-send'),
          messages: encoded.slice(i, i + PUBLISH_CHUNK),
        });
      }
      await until(target);
      return count / ((performance.now() - start) / 1000);
    };
    return { round: timedRound, stop };
  }

  /** One timed round of a fresh sender (after its warm-up), stopped before the next one starts. */
  async function senderRound(trail: boolean): Promise<number> {
    // The groups are the service's own: one sender at a time, or they would share partitions.
    const sender = await startSender(trail);
    try {
      // Warm-up: connections, JIT, the registry's schema cache, the consumer group's assignment.
      await sender.round(300);
      return await sender.round(MESSAGES);
    } finally {
      await sender.stop();
    }
  }

  try {
    await producer.connect();
    // The trail's cost: one notify.status record per message, written with the message's commit.
    // Rounds alternate raw, trail on, trail off, so a machine whose load drifts skews all three alike.
    await rawRound(500);
    const raw: number[] = [];
    const sender: number[] = [];
    const untraced: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      raw.push(await rawRound(MESSAGES));
      sender.push(await senderRound(true));
      untraced.push(await senderRound(false));
    }
    const rawMedian = median(raw);
    const senderMedian = median(sender);
    const untracedMedian = median(untraced);
    return {
      messages_per_round: MESSAGES,
      rounds: ROUNDS,
      smtp_pool: POOL,
      in_flight: IN_FLIGHT,
      sender: { messages_per_s: round(senderMedian), rounds: sender.map((r) => round(r)) },
      sender_trail_off: { messages_per_s: round(untracedMedian), rounds: untraced.map((r) => round(r)) },
      raw_nodemailer_pool: { messages_per_s: round(rawMedian), rounds: raw.map((r) => round(r)) },
      ratio_sender_to_raw: round(senderMedian / rawMedian),
      ratio_trail_on_to_off: round(senderMedian / untracedMedian),
      goal: 0.8,
    };
  } finally {
    await producer.disconnect();
    for (const { dc, schema, stop } of senders) {
      await stop();
      await deleteDcTopics(kafka, dc);
      await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    }
    await db.end();
    await sink.stop();
    await rm(keyDir, { recursive: true, force: true });
  }
}
