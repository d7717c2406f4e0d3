/**
 * Deletes that stick, on both real clusters, through the services' own handlers in the consumer
 * runtime: a push token subscribed in codfw and removed in eqiad (a dead token's tombstone) is not
 * delivered to again after a replay from the beginning, a rebuild from empty tables, or a rebuild
 * after compaction (codfw's subscription and the notify.erasure record left); a suppression lift
 * that fails and goes through the retry path does not undo a complaint that arrived meanwhile,
 * and a replay or a rebuild keeps the complaint.
 *
 * The topics are the real, shared eqiad.* and codfw.* ones; the token, the address, the groups,
 * the service name (so its retry topics) and the Postgres schemas are this run's own.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import type { Kafka } from 'kafkajs';
import type pg from 'pg';
import { Registry } from 'prom-client';
import {
  type ConsumerRuntime,
  createConsumerRuntime,
  type RecordHandler,
} from '../../libs/kafka/consumer-runtime.ts';
import { topicFor } from '../../libs/kafka/topics.ts';
import type { StreamName } from '../../libs/schemas/catalog.ts';
import { createSerde } from '../../libs/schemas/serde.ts';
import { liftHandler, suppressedAmong, suppressionHandler } from '../../services/email/suppressions.ts';
import { devicesOf, erasureHandler, subscriptionHandler } from '../../services/push/subscriptions.ts';
import {
  createConsumerTopics,
  eventually,
  quietLog,
  REGISTRY_URL,
  readTopic,
  testKafka,
  untilCommitted,
  withAdmin,
} from './harness.ts';
import { dropServiceSchemas, publishersPerDc, serviceSchema } from './service-schemas.ts';

const MIRROR_DEADLINE_MS = 60_000;
const run = randomBytes(4).toString('hex');
const service = `deletes-${run}`;
const DCS = ['eqiad', 'codfw'] as const;
const RETRY_MS = 3_000;
const serde = createSerde({ registryUrl: REGISTRY_URL });
const eqiad = testKafka('eqiad');
const publishers = publishersPerDc(service);
const freshSchema = (svc: 'push' | 'email') => serviceSchema(svc, `${svc}_deletes_${run}_${++schemaCount}`);
let schemaCount = 0;
let groupCount = 0;

interface Group<S extends StreamName> {
  stream: S;
  dcs: readonly string[];
  // biome-ignore lint/suspicious/noExplicitAny: each stream's handler has its own record type
  handler: RecordHandler<any>;
}

/** Runs each group (fresh group ids, so from the beginning) until it has consumed everything, then stops. */
async function consumeAll(
  kafka: Kafka,
  groups: Group<StreamName>[],
  until: () => boolean = () => true,
): Promise<void> {
  const runtimes: { runtime: ConsumerRuntime; group: string; topics: string[] }[] = groups.map((g) => {
    const group = `${service}-${++groupCount}`;
    return {
      group,
      topics: g.dcs.map((dc) => topicFor(dc, g.stream)),
      runtime: createConsumerRuntime({
        kafka,
        codec: serde,
        log: quietLog,
        registry: new Registry(),
        service,
        group,
        dc: 'eqiad',
        dcs: g.dcs,
        stream: g.stream,
        handler: g.handler,
        retryDelaysMs: [RETRY_MS],
        checkpointIntervalMs: 200,
      }),
    };
  });
  for (const g of groups) {
    await createConsumerTopics(kafka, 'eqiad', { stream: g.stream, service, retryDelaysMs: [RETRY_MS] });
  }
  for (const r of runtimes) await r.runtime.start();
  try {
    for (const r of runtimes) await untilCommitted(kafka, r.group, r.topics, `${r.group} caught up`, 120_000);
    await eventually(() => (until() ? true : undefined), 'the retried record', 60_000);
  } finally {
    for (const r of runtimes) await r.runtime.stop();
  }
}

after(async () => {
  await dropServiceSchemas();
  for (const p of Object.values(publishers)) await p.close();
  await withAdmin(eqiad, async (admin) => {
    const groups = (await admin.listGroups()).groups
      .map((g) => g.groupId)
      .filter((g) => g.startsWith(`${service}-`));
    if (groups.length > 0) await admin.deleteGroups(groups).catch(() => undefined);
    const topics = (await admin.listTopics()).filter((t) => t.includes(`.${service}.`));
    if (topics.length > 0) await admin.deleteTopics({ topics });
  });
});

/** Waits until eqiad's cluster holds both prefixes' records of `key` on `stream`. */
async function mirrored(stream: string, key: string, count: { eqiad: number; codfw: number }): Promise<void> {
  for (const dc of DCS.filter((d) => count[d] > 0)) {
    await readTopic(
      eqiad,
      topicFor(dc, stream),
      (ms) => ms.filter((m) => m.key?.toString() === key).length >= count[dc],
      MIRROR_DEADLINE_MS,
    );
  }
}

describe('a dead push token stays dead', () => {
  const user = `deletes-user-${run}`;
  const tokenHash = `deletes-token-${run}`;
  const pushGroups = (db: pg.Pool, subscriptionDcs: readonly string[] = DCS): Group<StreamName>[] => [
    {
      stream: 'notify.push-subscription',
      dcs: subscriptionDcs,
      handler: subscriptionHandler(db, { cap: 10, dc: 'eqiad', log: quietLog }),
    },
    { stream: 'notify.erasure', dcs: DCS, handler: erasureHandler(db) },
  ];
  const tokensOf = async (db: pg.Pool) =>
    ((await devicesOf(db, [user])).get(user) ?? []).map((d) => d.tokenHash);
  let db: pg.Pool;

  test('subscribed in codfw, removed in eqiad: gone, and recorded on eqiad.notify.erasure', async () => {
    await publishers.codfw.publish('notify.push-subscription', {
      token_hash: tokenHash,
      user_id: user,
      provider: 'fcm',
      token: `token-${run}`,
      app: 'org.example',
      locale: 'en',
    });
    await mirrored('notify.push-subscription', tokenHash, { eqiad: 0, codfw: 1 });
    await publishers.eqiad.tombstone('notify.push-subscription', tokenHash);
    db = await freshSchema('push');
    await consumeAll(eqiad, pushGroups(db));
    assert.deepEqual(await tokensOf(db), []);
    await readTopic(
      eqiad,
      topicFor('eqiad', 'notify.erasure'),
      (ms) => ms.some((m) => m.key?.toString() === `notify.push-subscription|${tokenHash}`),
      MIRROR_DEADLINE_MS,
    );
  });

  test('a replay of every group from the beginning', async () => {
    await consumeAll(eqiad, pushGroups(db));
    assert.deepEqual(await tokensOf(db), []);
  });

  test('a rebuild from empty tables', async () => {
    const empty = await freshSchema('push');
    await consumeAll(eqiad, pushGroups(empty));
    assert.deepEqual(await tokensOf(empty), []);
  });

  test("a rebuild after compaction removed eqiad's tombstone (codfw's subscription left)", async () => {
    const empty = await freshSchema('push');
    await consumeAll(eqiad, pushGroups(empty, ['codfw']));
    assert.deepEqual(await tokensOf(empty), []);
  });
});

describe('a complaint newer than a retried lift stays', () => {
  const address = `deletes-address-${run}`;
  const attempts: number[] = [];
  let db: pg.Pool;
  /** The email sender's handler, whose first try at this address's lift fails (a database blip). */
  const flakyLift = (pool: pg.Pool): RecordHandler<unknown> => {
    const real = suppressionHandler(pool, 'eqiad');
    return {
      handle: (record, context) => real.handle(record as never, context),
      async handleTombstone(record, context) {
        if (record.key === address) attempts.push(record.attempt);
        if (record.key === address && record.attempt === 0)
          throw new Error('connection terminated unexpectedly');
        await real.handleTombstone!(record, context);
      },
    };
  };
  const suppression = (reason: 'hard_bounce' | 'complaint') => ({
    address_hash: address,
    address: null,
    reason,
    until: null,
    detail: null,
  });

  test('suppressed in codfw, lifted in eqiad (that fails once), complained about: still suppressed after the retried lift', async () => {
    await publishers.codfw.publish('notify.suppression', suppression('hard_bounce'));
    await mirrored('notify.suppression', address, { eqiad: 0, codfw: 1 });
    await publishers.eqiad.tombstone('notify.suppression', address);
    await publishers.eqiad.publish('notify.suppression', suppression('complaint'));
    db = await freshSchema('email');
    // Until the lift came back from the retry topic, after the complaint had been applied...
    await consumeAll(
      eqiad,
      [
        { stream: 'notify.suppression', dcs: DCS, handler: flakyLift(db) },
        { stream: 'notify.erasure', dcs: DCS, handler: liftHandler(db) },
      ],
      () => attempts.includes(1),
    );
    assert.ok(attempts.includes(1), `the lift went through the retry path (attempts seen: ${attempts})`);
    // ...and lost to it: it is older.
    assert.deepEqual([...(await suppressedAmong(db, [address]))], [address]);
  });

  test('a replay of every group from the beginning, and a rebuild from empty tables', async () => {
    const real = (pool: pg.Pool): Group<StreamName>[] => [
      { stream: 'notify.suppression', dcs: DCS, handler: suppressionHandler(pool, 'eqiad') },
      { stream: 'notify.erasure', dcs: DCS, handler: liftHandler(pool) },
    ];
    await consumeAll(eqiad, real(db));
    assert.deepEqual([...(await suppressedAmong(db, [address]))], [address]);
    const empty = await freshSchema('email');
    await consumeAll(eqiad, real(empty));
    assert.deepEqual([...(await suppressedAmong(empty, [address]))], [address]);
  });
});
