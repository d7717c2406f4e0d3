/**
 * The datacenter failover drill (`make test-drill`, run last by `make test` because it stops and
 * restarts the eqiad cluster). The router and the email service run in eqiad on a steady stream of
 * events while MirrorMaker copies eqiad.* to codfw; the eqiad services are killed mid-stream and
 * eqiad's cluster is stopped; `tidings failover --from eqiad --to codfw --execute` repositions the
 * groups on codfw from the mirrored checkpoints; the same services start in codfw and carry on.
 * Every event published before the failure must reach every recipient's mailbox: nothing is lost.
 * Nobody gets a mail twice, except through the sender's documented window: a mail whose SMTP
 * transaction was under way at the kill (at most two per connection) is sent again from codfw under
 * the same Message-ID, so a second copy is always such an unconfirmed claim and looks like the first.
 *
 * The failover moves every group of the topic plan, as an operator's `tidings failover` does, with
 * the groups that only other tests used on the shared checkpoint topic in the way. Before the
 * failure a six-day-old retry of an event sits on the router's retry topic and is handled in
 * eqiad; its partition then idles with that record as its last. The restart time each group gets
 * must not be dragged back to it: an idle partition counts from when it was caught up.
 * The drill reports each running group's restart time, what codfw read again and what it
 * deduplicated, and the lost, resent and duplicate counts.
 *
 * Both datacenters' services use the same Postgres schemas: the drill models a database that fails
 * over with the datacenter (replicated), which is what lets codfw skip what eqiad already did.
 * The topics are the real eqiad.* and codfw.* ones (MirrorMaker copies only those); people, events
 * and addresses are this run's own, so earlier records on those topics change nothing asserted.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Kafka } from 'kafkajs';
import pg from 'pg';
import { DEFAULT_DATABASE_URL } from '../../libs/config/common.ts';
import { createProducer, DURABLE_SEND } from '../../libs/kafka/client.ts';
import { offsetsAt } from '../../libs/kafka/offsets-at-time.ts';
import { HEADER } from '../../libs/kafka/record-headers.ts';
import { DEFAULT_RETRY_DELAYS_MS } from '../../libs/kafka/retry-policy.ts';
import { CONSUMERS } from '../../libs/kafka/topic-plan.ts';
import { readRanges } from '../../libs/kafka/topic-reader.ts';
import { retryTopic, topicFor } from '../../libs/kafka/topics.ts';
import { buildRecord, createPublisher } from '../../libs/publish/publish.ts';
import { createSerde } from '../../libs/schemas/serde.ts';
import { sendIdOf } from '../../services/email/message.ts';
import { notificationId } from '../../services/router/notification-id.ts';
import {
  BROKERS,
  eventually,
  freePort,
  isCommitted,
  metricValue,
  REGISTRY_URL,
  runTidings,
  type ServiceProcess,
  spawnService,
  stackCtl,
  stopServices,
  testKafka,
  untilCommitted,
  withAdmin,
} from '../integration/harness.ts';
import { type SmtpSink, startSmtpSink } from '../smtp-sink/sink.ts';

const root = join(import.meta.dirname, '..', '..');
const run = randomBytes(4).toString('hex');
const SCHEMAS = { router: `drill_${run}_router`, email: `drill_${run}_email` };
const PEOPLE = Array.from({ length: 50 }, (_, i) => `drill-${run}-${i}`);
const addressOf = (user: string) => `${user}@drill.example.org`;
/** How far before the earliest checkpoint codfw restarts: wide enough to re-read the whole drill. */
const MARGIN = '2m';
const EVENT_EVERY_MS = 40;
const SMTP_CONNECTIONS = 5;
/** The groups the drill's two services run in eqiad, by the topic plan. */
const RUNNING = [
  ...new Set(CONSUMERS.filter((c) => c.service === 'router' || c.service === 'email').map((c) => c.group)),
];
/** Retry topics keep seven days: an old record there can be this old. */
const OLD_RETRY_AGE_MS = 6 * 24 * 3_600_000;

const eqiad = testKafka('eqiad');
const codfw = testKafka('codfw');
const db = new pg.Pool({ connectionString: DEFAULT_DATABASE_URL, max: 2 });
const publisher = createPublisher({
  brokers: BROKERS.eqiad,
  dc: 'eqiad',
  registryUrl: REGISTRY_URL,
  producer: 'drill',
});
const serde = createSerde({ registryUrl: REGISTRY_URL });
const secret = (fill: number) => Buffer.alloc(32, fill).toString('base64');
let sink: SmtpSink;
let eqiadStopped = false;
/** A service of `dc` on that datacenter's own cluster, as it would run there. */
async function startDrillService(name: 'router' | 'email', dc: 'eqiad' | 'codfw'): Promise<ServiceProcess> {
  const port = await freePort();
  return spawnService(
    name,
    dc,
    {},
    {
      port,
      env: {
        ...process.env,
        TIDINGS_DC: dc,
        TIDINGS_DCS: 'eqiad,codfw',
        KAFKA_BROKERS: BROKERS[dc].join(','),
        SCHEMA_REGISTRY_URL: REGISTRY_URL,
        HTTP_PORT: String(port),
        DATABASE_SCHEMA: SCHEMAS[name],
        LOG_LEVEL: 'error',
        CHECKPOINT_INTERVAL: '1s',
        // Caught-up checkpoints well before the kill (60 s by default, longer than the drill waits).
        CHECKPOINT_CAUGHT_UP_INTERVAL: '2s',
        CONSUMER_SESSION_TIMEOUT: '6s',
        SMTP_URL: `smtp://127.0.0.1:${sink.port}`,
        SMTP_MAX_CONNECTIONS: String(SMTP_CONNECTIONS),
        VERP_DOMAIN: 'bounces.drill.example.org',
        VERP_KEYS: `1:${secret(1)}`,
        EMAIL_UNSUBSCRIBE_KEYS: `k1:${secret(2)}`,
        EMAIL_UNSUBSCRIBE_URL: 'https://drill.example.org/unsubscribe',
        EMAIL_UNSUBSCRIBE_PORT: String(await freePort()),
      },
    },
  );
}

/** `tidings failover` from eqiad to codfw of every planned group: a plan, unless given --execute. */
const failoverCommand = (...args: string[]) =>
  runTidings('-o', 'json', 'failover', '--from', 'eqiad', '--to', 'codfw', '--margin', MARGIN, ...args);

interface FailoverRow {
  group: string;
  topic: string;
  partition: number;
  new: number;
  restart_at: string | null;
}

/** Per group of a failover's printed plan, its restart time (null: no checkpoints, log start). */
function restartTimes(rows: readonly FailoverRow[]): Map<string, number | null> {
  return new Map(rows.map((r) => [r.group, r.restart_at === null ? null : Date.parse(r.restart_at)]));
}

/**
 * A retry of an event that failed `OLD_RETRY_AGE_MS` ago, due as long ago, on the router's longest
 * retry topic: written with its old Kafka timestamp, as it was then.
 */
async function putOldRetry(eventId: string, user: string, at: number): Promise<string> {
  const delay = DEFAULT_RETRY_DELAYS_MS.at(-1)!;
  const topic = retryTopic('eqiad', 'notify.event', 'router', delay);
  const built = buildRecord(
    'notify.event',
    {
      meta: { dt: at },
      event_id: eventId,
      type: 'user-rights',
      category: 'user-rights',
      recipients: [user],
      title: 'Drill, retried',
    },
    { dc: 'eqiad', producer: 'drill' },
  );
  if ('problems' in built) throw new Error(built.problems.join('; '));
  const producer = createProducer(eqiad);
  await producer.connect();
  try {
    await producer.send({
      ...DURABLE_SEND,
      topic,
      messages: [
        {
          key: built.key,
          value: await serde.encode('notify.event', built.value),
          timestamp: String(at),
          headers: {
            [HEADER.sourceTopic]: topicFor('eqiad', 'notify.event'),
            [HEADER.attempt]: '1',
            [HEADER.retryDue]: String(at + delay),
          },
        },
      ],
    });
  } finally {
    await producer.disconnect();
  }
  return topic;
}

/**
 * Per group, how many records the failover's moves make codfw read that were on the log before
 * `killedAt`: what eqiad had handled or was handling, read again.
 */
async function rereadBefore(rows: readonly FailoverRow[], killedAt: number): Promise<Record<string, number>> {
  const atKill = await withAdmin(codfw, (admin) =>
    offsetsAt(admin, [...new Set(rows.map((r) => r.topic))], killedAt),
  );
  const reread: Record<string, number> = {};
  for (const r of rows) {
    const n = Math.max(0, (atKill.get(`${r.topic}:${r.partition}`) ?? r.new) - r.new);
    if (n > 0) reread[r.group] = (reread[r.group] ?? 0) + n;
  }
  return reread;
}

/** Records of `topic` on `kafka` whose key starts with this run's prefix. */
async function countRunRecords(kafka: Kafka, topic: string, keyPrefix: string): Promise<number> {
  const bounds = await withAdmin(kafka, (admin) => admin.fetchTopicOffsets(topic));
  let count = 0;
  await readRanges(kafka, {
    ranges: bounds.map((b) => ({ topic, partition: b.partition, from: Number(b.low), to: Number(b.high) })),
    onRecord: ({ message }) => {
      if (message.key?.toString('utf8').startsWith(keyPrefix)) count += 1;
      return true;
    },
  });
  return count;
}

/** The send id of the one instant mail an event makes for a person. */
const sendIdFor = (eventId: string, user: string) => sendIdOf([notificationId(eventId, user, 'email')]);

/** Send ids of the mail this run's people received, in order of arrival (earlier runs' people may get mail too). */
function deliveredSendIds(): string[] {
  return sink.received.flatMap((mail) => {
    const id = mail.parsed?.headers.get('x-tidings-send-id');
    const ours = mail.rcptTo.some((to) => to.startsWith(`drill-${run}-`));
    return ours && typeof id === 'string' ? [id] : [];
  });
}

/** The Message-ID of every copy of a send id that arrived. */
const messageIdsOf = (sendId: string) =>
  sink.received
    .filter((mail) => mail.parsed?.headers.get('x-tidings-send-id') === sendId)
    .map((mail) => mail.parsed?.messageId);

/** Where the undelivered mails got to, by the sender's ledger and the digest side's tables. */
async function whereAreTheMissing(expected: ReadonlySet<string>): Promise<string> {
  const delivered = new Set(deliveredSendIds());
  const missing = [...expected].filter((id) => !delivered.has(id));
  const { rows: ledger } = await db.query<{ state: string; n: number }>(
    `SELECT state, count(*)::int AS n FROM ${SCHEMAS.email}.sent_messages WHERE send_id = ANY($1) GROUP BY state`,
    [missing],
  );
  const { rows: emitted } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM ${SCHEMAS.email}.emitted_notifications WHERE send_id = ANY($1)`,
    [missing],
  );
  return `${missing.length} missing: sender ledger ${JSON.stringify(ledger)}, emitted by the digest side ${emitted[0]?.n}`;
}

/** Once every given service answers /readyz with 200. */
function allReady(...list: ServiceProcess[]): Promise<true> {
  return eventually(
    async () => {
      for (const { port } of list) {
        const ok = await fetch(`http://127.0.0.1:${port}/readyz`)
          .then((r) => r.ok)
          .catch(() => false);
        if (!ok) return undefined;
      }
      return true;
    },
    'the services to be ready',
    120_000,
  );
}

before(async () => {
  sink = await startSmtpSink();
});

after(async () => {
  await stopServices('SIGKILL');
  await publisher.close().catch(() => undefined);
  if (eqiadStopped) {
    await stackCtl('start', 'eqiad');
    // MirrorMaker lost its eqiad side for the drill; a restart reconnects both directions at once.
    await stackCtl('restart', 'mirror');
  }
  await sink.stop();
  for (const schema of Object.values(SCHEMAS)) await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await db.end();
});

test('failover from eqiad to codfw: every event reaches its recipients; a second copy is only an unconfirmed claim, under the same Message-ID', async (t) => {
  await publisher.publishMany(
    PEOPLE.map((user) => ({
      stream: 'notify.user' as const,
      record: {
        user_id: user,
        email: addressOf(user),
        last_active: Date.now(),
        email_frequency: 'instant' as const,
      },
    })),
  );
  let router = await startDrillService('router', 'eqiad');
  let email = await startDrillService('email', 'eqiad');
  await eventually(
    async () => {
      const { rows } = await db
        .query<{ n: number }>(
          `SELECT count(*)::int AS n FROM ${SCHEMAS.router}.users WHERE user_id = ANY($1)`,
          [PEOPLE],
        )
        .catch(() => ({ rows: [{ n: -1 }] }));
      return rows[0]?.n === PEOPLE.length ? true : undefined;
    },
    'the eqiad router to know every person',
    90_000,
  );
  // The old retry goes in once its person is known, so the router mails them (one more expected).
  const oldRetryAt = Date.now() - OLD_RETRY_AGE_MS;
  const oldRetryEvent = `drill-${run}-old-retry`;
  const oldRetryTopic = await putOldRetry(oldRetryEvent, PEOPLE[0]!, oldRetryAt);

  // A steady stream: one event every EVENT_EVERY_MS for two people, until told to stop.
  const expected = new Set<string>([sendIdFor(oldRetryEvent, PEOPLE[0]!)]);
  let produced = 0;
  let streaming = true;
  const stream = (async () => {
    while (streaming) {
      const eventId = `drill-${run}-e${produced}`;
      const recipients = [PEOPLE[produced % PEOPLE.length]!, PEOPLE[(produced * 7 + 3) % PEOPLE.length]!];
      const unique = [...new Set(recipients)];
      await publisher.publish('notify.event', {
        event_id: eventId,
        type: 'user-rights',
        category: 'user-rights',
        recipients: unique,
        title: `Drill ${produced}`,
      });
      for (const user of unique) expected.add(sendIdFor(eventId, user));
      produced += 1;
      await new Promise((r) => setTimeout(r, EVENT_EVERY_MS));
    }
  })();

  await eventually(
    () => (deliveredSendIds().length >= 50 ? true : undefined),
    'eqiad to deliver mail',
    120_000,
  );
  // Kill only once every running group has checkpoints on codfw: one without any would restart at
  // its log starts, which is safe but no drill of restarting by time. The old retry is handled by
  // then, so its partition's checkpoint has had its last record's six-day-old time.
  await untilCommitted(eqiad, 'router', [oldRetryTopic], 'the eqiad router to take the old retry', 60_000);
  let unplanned: string[] = [];
  await eventually(
    async () => {
      const plan = await failoverCommand();
      if (plan.status !== 0) return undefined;
      const restarts = restartTimes(JSON.parse(plan.stdout) as FailoverRow[]);
      unplanned = RUNNING.filter((g) => (restarts.get(g) ?? null) === null);
      return unplanned.length === 0 ? true : undefined;
    },
    'a checkpoint of every running group on codfw',
    60_000,
  ).catch((error: Error) => {
    throw new Error(`${error.message} (none yet: ${unplanned.join(', ')})`);
  });
  await router.stop('SIGKILL');
  await email.stop('SIGKILL');
  const killedAt = Date.now();
  const deliveredByEqiad = deliveredSendIds().length;
  // The claims eqiad's sender left unconfirmed: the only mail codfw may send a second time.
  const { rows: unconfirmed } = await db.query<{ send_id: string }>(
    `SELECT send_id FROM ${SCHEMAS.email}.sent_messages WHERE send_id = ANY($1) AND state = 'sending'`,
    [[...expected]],
  );
  const unconfirmedAtKill = new Set(unconfirmed.map((row) => row.send_id));
  // Events keep arriving for a moment after the services die: nobody is left in eqiad to handle them.
  await new Promise((r) => setTimeout(r, 1_500));
  streaming = false;
  await stream;

  // A planned drill: MirrorMaker has copied every event before the cluster goes (what it has not
  // copied when a datacenter really vanishes is lost: MirrorMaker's lag is the recovery point).
  await eventually(
    async () =>
      (await countRunRecords(codfw, topicFor('eqiad', 'notify.event'), `drill-${run}-`)) === produced
        ? true
        : undefined,
    `codfw to hold all ${produced} events`,
    120_000,
  );
  const checkpoints = topicFor('eqiad', 'notify.checkpoint');
  const eqiadEnds = await withAdmin(eqiad, (admin) => admin.fetchTopicOffsets(checkpoints));
  await eventually(
    async () => {
      const copy = await withAdmin(codfw, (admin) => admin.fetchTopicOffsets(checkpoints));
      const sum = (offsets: { high: string }[]) => offsets.reduce((n, o) => n + Number(o.high), 0);
      return sum(copy) >= sum(eqiadEnds) ? true : undefined;
    },
    'codfw to hold the last eqiad checkpoints',
    60_000,
  );
  await stackCtl('stop', 'eqiad');
  eqiadStopped = true;

  const failoverAt = Date.now();
  const failover = await failoverCommand(
    '--execute',
    '--rollback-file',
    join(root, '.data', `drill-rollback-${run}.json`),
  );
  assert.equal(failover.status, 0, failover.stderr);
  const failoverDone = Date.now();
  const moves = JSON.parse(failover.stdout) as FailoverRow[];
  const restarts = restartTimes(moves);
  for (const group of RUNNING) {
    const at = restarts.get(group) ?? null;
    assert.ok(
      at !== null && at > oldRetryAt,
      `${group} restarts at ${at === null ? 'its log starts' : new Date(at).toISOString()}, not dragged back to the old retry (${new Date(oldRetryAt).toISOString()})`,
    );
  }
  const reread = await rereadBefore(moves, killedAt);

  router = await startDrillService('router', 'codfw');
  email = await startDrillService('email', 'codfw');
  await allReady(router, email);
  const codfwReady = Date.now();
  const firstDelivery = await eventually(
    () => (deliveredSendIds().length > deliveredByEqiad ? Date.now() : undefined),
    'the first delivery from codfw',
    180_000,
  );
  // Each stage commits only after its outputs are in Kafka, so once the router, then the digest
  // side, then the sender have committed up to the log ends, every mail that will go has gone.
  // Everything the failover rewound is handled by then too, so no late duplicate can hide.
  const bothPrefixes = (stream: 'notify.event' | 'notify.email' | 'notify.email-send') => [
    topicFor('eqiad', stream),
    topicFor('codfw', stream),
  ];
  await eventually(
    async () => {
      for (const [group, topics] of [
        ['router', bothPrefixes('notify.event')],
        ['email', bothPrefixes('notify.email')],
        ['email-sender', bothPrefixes('notify.email-send')],
      ] as const) {
        if (!(await isCommitted(codfw, group, topics))) return undefined;
      }
      return true;
    },
    'codfw to catch up',
    300_000,
  ).catch(async (error: Error) => {
    throw new Error(`${error.message}; ${await whereAreTheMissing(expected)}`);
  });

  const counts = new Map<string, number>();
  for (const id of deliveredSendIds()) counts.set(id, (counts.get(id) ?? 0) + 1);
  const lost = [...expected].filter((id) => !counts.has(id));
  assert.deepEqual(
    lost,
    [],
    `every event published before the failure reached its recipients (${await whereAreTheMissing(expected)})`,
  );
  // The sender's window (sent-ledger.ts): a claim unconfirmed at the kill is sent again.
  const twice = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
  for (const id of twice) {
    assert.ok(
      unconfirmedAtKill.has(id),
      `${id} arrived ${counts.get(id)} times but was not unconfirmed at the kill`,
    );
    assert.equal(counts.get(id), 2, `${id} arrived ${counts.get(id)} times`);
    const [first, second] = messageIdsOf(id);
    assert.ok(first, `${id} has a Message-ID`);
    assert.equal(second, first, `the second copy of ${id} carries the first one's Message-ID`);
  }
  const resent = await metricValue(email.port, 'tidings_email_sender_messages_total', { outcome: 'resent' });

  const duplicateEvents = await metricValue(router.port, 'tidings_router_events_total', {
    reason: 'duplicate-event',
  });
  const report = {
    events: produced,
    mails: expected.size,
    delivered_by_eqiad: deliveredByEqiad,
    delivered_by_codfw: deliveredSendIds().length - deliveredByEqiad,
    failover_command_ms: failoverDone - failoverAt,
    groups_moved: restarts.size,
    old_retry_at: new Date(oldRetryAt).toISOString(),
    // How long before the kill each running group restarts: the margin plus its checkpoint's age.
    restart_before_kill_ms: Object.fromEntries(
      RUNNING.map((g) => [g, killedAt - (restarts.get(g) ?? Number.NaN)]),
    ),
    reread_before_kill: reread,
    failover_to_codfw_ready_ms: codfwReady - failoverAt,
    failover_to_first_codfw_delivery_ms: firstDelivery - failoverAt,
    // What codfw read, and each stage's deduplication (the router's processed-events ledger, the
    // digest side's emitted notifications, the sender's sent ledger). The counts include earlier
    // runs' records on the shared topics that fall inside the margin.
    router_events_read: await metricValue(router.port, 'tidings_consumer_records_total', { group: 'router' }),
    router_duplicate_events_skipped: duplicateEvents,
    email_duplicates_skipped: await metricValue(email.port, 'tidings_email_digest_outcomes_total', {
      outcome: 'duplicate',
    }),
    sender_duplicates_skipped: await metricValue(email.port, 'tidings_email_sender_messages_total', {
      outcome: 'skipped_duplicate',
    }),
    unconfirmed_at_kill: unconfirmedAtKill.size,
    lost: lost.length,
    resent,
    duplicates: twice.length,
  };
  t.diagnostic(JSON.stringify(report));
  console.log(
    `drill: ${restarts.size} groups moved, router restarts ${report.restart_before_kill_ms.router} ms before the kill (old retry ${OLD_RETRY_AGE_MS} ms back); re-read ${reread.router ?? 0} events, ${duplicateEvents} deduplicated; lost ${lost.length}, resent ${resent}, duplicates ${twice.length}`,
  );
  assert.ok(
    duplicateEvents > 0,
    'the margin made codfw re-read events eqiad had handled, and it skipped them',
  );
  await router.stop('SIGTERM');
  await email.stop('SIGTERM');
});
