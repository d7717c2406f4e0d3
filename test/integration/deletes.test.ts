/**
 * Deletes that stick, on both real clusters, through the services' own handlers in the consumer
 * runtime: a push token subscribed in codfw and removed in eqiad (a dead token's tombstone) is not
 * delivered to again after a replay from the beginning, a rebuild from empty tables, or a rebuild
 * after compaction (codfw's subscription and the notify.erasure record left), or a failover of its
 * groups to codfw followed by a stale copy of the subscription; a suppression lift that fails and
 * goes through the retry path does not undo a complaint that arrived meanwhile, and a replay, a
 * rebuild, or a failover that leaves the retried lift to codfw keeps the complaint.
 *
 * The topics are the real, shared eqiad.* and codfw.* ones; the token, the address, the groups,
 * the service name (so its retry topics) and the Postgres schemas are this run's own. A failover
 * keeps the tables: they model a database that fails over with the datacenter, as in the drill.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import type pg from 'pg';
import { Registry } from 'prom-client';
import {
  type ConsumerRuntime,
  createConsumerRuntime,
  type RecordHandler,
  RetryLater,
} from '../../libs/kafka/consumer-runtime.ts';
import { retryTopic, topicFor } from '../../libs/kafka/topics.ts';
import type { StreamName } from '../../libs/schemas/catalog.ts';
import { createSerde } from '../../libs/schemas/serde.ts';
import { liftHandler, suppressedAmong, suppressionHandler } from '../../services/email/suppressions.ts';
import { devicesOf, erasureHandler, subscriptionHandler } from '../../services/push/subscriptions.ts';
import {
  createConsumerTopics,
  eventually,
  failoverGroups,
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
const codfw = testKafka('codfw');
const clusters = { eqiad, codfw } as const;
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

interface ConsumeOptions {
  /** The datacenter the groups run in, on its own cluster. */
  dc?: 'eqiad' | 'codfw';
  /** The groups' ids, one per group given, to carry on where they are; default fresh ones, so from the beginning. */
  ids?: readonly string[];
  /** Names the retry topics; the file's own by default. */
  service?: string;
  /** What else must have happened before the groups stop. */
  until?: () => boolean;
  /** Done once the groups have caught up; they then catch up with what it wrote before stopping. */
  afterCatchUp?: () => Promise<unknown>;
}

/** Runs each group until it has consumed everything, then stops; returns the group ids. */
async function consumeAll(
  groups: Group<StreamName>[],
  { dc = 'eqiad', ids, service: name = service, until = () => true, afterCatchUp }: ConsumeOptions = {},
): Promise<string[]> {
  const kafka = clusters[dc];
  const runtimes: { runtime: ConsumerRuntime; group: string; topics: string[] }[] = groups.map((g, i) => {
    const group = ids?.[i] ?? `${service}-${++groupCount}`;
    return {
      group,
      topics: g.dcs.map((d) => topicFor(d, g.stream)),
      runtime: createConsumerRuntime({
        kafka,
        codec: serde,
        log: quietLog,
        registry: new Registry(),
        service: name,
        group,
        dc,
        dcs: g.dcs,
        stream: g.stream,
        handler: g.handler,
        retryDelaysMs: [RETRY_MS],
        checkpointIntervalMs: 200,
      }),
    };
  });
  for (const g of groups) {
    await createConsumerTopics(kafka, dc, { stream: g.stream, service: name, retryDelaysMs: [RETRY_MS] });
  }
  for (const r of runtimes) await r.runtime.start();
  try {
    const caughtUp = async () => {
      for (const r of runtimes)
        await untilCommitted(kafka, r.group, r.topics, `${r.group} caught up`, 120_000);
    };
    await caughtUp();
    if (afterCatchUp) {
      await afterCatchUp();
      await caughtUp();
    }
    await eventually(() => (until() ? true : undefined), 'the retried record', 90_000);
  } finally {
    for (const r of runtimes) await r.runtime.stop();
  }
  return runtimes.map((r) => r.group);
}

after(async () => {
  await dropServiceSchemas();
  for (const p of Object.values(publishers)) await p.close();
  // Both clusters: the failovers ran groups on codfw, and MirrorMaker copied eqiad's retry topics.
  for (const kafka of [eqiad, codfw]) {
    await withAdmin(kafka, async (admin) => {
      const groups = (await admin.listGroups()).groups
        .map((g) => g.groupId)
        .filter((g) => g.startsWith(`${service}-`));
      if (groups.length > 0) await admin.deleteGroups(groups).catch(() => undefined);
      const topics = (await admin.listTopics()).filter((t) => t.includes(`.${service}`));
      if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => undefined);
    });
  }
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
  const pushGroups = (
    db: pg.Pool,
    subscriptionDcs: readonly string[] = DCS,
    dc = 'eqiad',
  ): Group<StreamName>[] => [
    {
      stream: 'notify.push-subscription',
      dcs: subscriptionDcs,
      handler: subscriptionHandler(db, { cap: 10, dc, log: quietLog }),
    },
    { stream: 'notify.erasure', dcs: DCS, handler: erasureHandler(db) },
  ];
  const subscription = {
    token_hash: tokenHash,
    user_id: user,
    provider: 'fcm' as const,
    token: `token-${run}`,
    app: 'org.example',
    locale: 'en',
  };
  const subscribedAt = Date.now();
  let eqiadGroups: string[] = [];
  const tokensOf = async (db: pg.Pool) =>
    ((await devicesOf(db, [user])).get(user) ?? []).map((d) => d.tokenHash);
  let db: pg.Pool;

  test('subscribed in codfw, removed in eqiad: gone, and recorded on eqiad.notify.erasure', async () => {
    await publishers.codfw.publish('notify.push-subscription', {
      ...subscription,
      meta: { dt: subscribedAt },
    });
    await mirrored('notify.push-subscription', tokenHash, { eqiad: 0, codfw: 1 });
    await publishers.eqiad.tombstone('notify.push-subscription', tokenHash);
    db = await freshSchema('push');
    eqiadGroups = await consumeAll(pushGroups(db));
    assert.deepEqual(await tokensOf(db), []);
    await readTopic(
      eqiad,
      topicFor('eqiad', 'notify.erasure'),
      (ms) => ms.some((m) => m.key?.toString() === `notify.push-subscription|${tokenHash}`),
      MIRROR_DEADLINE_MS,
    );
  });

  test('a replay of every group from the beginning', async () => {
    await consumeAll(pushGroups(db));
    assert.deepEqual(await tokensOf(db), []);
  });

  test('a rebuild from empty tables', async () => {
    const empty = await freshSchema('push');
    await consumeAll(pushGroups(empty));
    assert.deepEqual(await tokensOf(empty), []);
  });

  test("a rebuild after compaction removed eqiad's tombstone (codfw's subscription left)", async () => {
    const empty = await freshSchema('push');
    await consumeAll(pushGroups(empty, ['codfw']));
    assert.deepEqual(await tokensOf(empty), []);
  });

  test("a failover of eqiad's groups to codfw, then a stale copy of the subscription in codfw", async () => {
    await failoverGroups(eqiadGroups, '10m');
    // The stale copy (a retried upstream write, as old as the subscription) comes once codfw has
    // re-read the margin, tombstone included: only the removal's marker can make it lose.
    await consumeAll(pushGroups(db, DCS, 'codfw'), {
      dc: 'codfw',
      ids: eqiadGroups,
      afterCatchUp: () =>
        publishers.codfw.publish('notify.push-subscription', { ...subscription, meta: { dt: subscribedAt } }),
    });
    assert.deepEqual(await tokensOf(db), []);
  });
});

describe('a complaint newer than a retried lift stays', () => {
  const address = `deletes-address-${run}`;
  const attempts: number[] = [];
  let db: pg.Pool;
  /**
   * The email sender's handler in `dc`, noting each attempt at `key`'s lift; `failure` says how an
   * attempt fails, if it does (a database blip).
   */
  const watchedLift = (
    pool: pg.Pool,
    {
      dc,
      key,
      seen,
      failure = () => undefined,
    }: {
      dc: string;
      key: string;
      seen: number[];
      failure?: (attempt: number) => Error | undefined;
    },
  ): RecordHandler<unknown> => {
    const real = suppressionHandler(pool, dc);
    return {
      handle: (record, context) => real.handle(record as never, context),
      async handleTombstone(record, context) {
        if (record.key === key) {
          seen.push(record.attempt);
          const error = failure(record.attempt);
          if (error) throw error;
        }
        await real.handleTombstone!(record, context);
      },
    };
  };
  const failsFirst = (attempt: number) =>
    attempt === 0 ? new Error('connection terminated unexpectedly') : undefined;
  const suppression = (reason: 'hard_bounce' | 'complaint', key = address) => ({
    address_hash: key,
    address: null,
    reason,
    until: null,
    detail: null,
  });
  /** Suppressed in codfw, then lifted in eqiad, then complained about in eqiad. */
  async function liftBetween(key: string): Promise<void> {
    await publishers.codfw.publish('notify.suppression', suppression('hard_bounce', key));
    await mirrored('notify.suppression', key, { eqiad: 0, codfw: 1 });
    await publishers.eqiad.tombstone('notify.suppression', key);
    await publishers.eqiad.publish('notify.suppression', suppression('complaint', key));
  }

  test('suppressed in codfw, lifted in eqiad (that fails once), complained about: still suppressed after the retried lift', async () => {
    await liftBetween(address);
    db = await freshSchema('email');
    // Until the lift came back from the retry topic, after the complaint had been applied...
    await consumeAll(
      [
        {
          stream: 'notify.suppression',
          dcs: DCS,
          handler: watchedLift(db, { dc: 'eqiad', key: address, seen: attempts, failure: failsFirst }),
        },
        { stream: 'notify.erasure', dcs: DCS, handler: liftHandler(db) },
      ],
      { until: () => attempts.includes(1) },
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
    await consumeAll(real(db));
    assert.deepEqual([...(await suppressedAmong(db, [address]))], [address]);
    const empty = await freshSchema('email');
    await consumeAll(real(empty));
    assert.deepEqual([...(await suppressedAmong(empty, [address]))], [address]);
  });

  test('a failover while the lift waits in its retry topic: codfw retries it, and the complaint stays', async () => {
    const key = `${address}-failover`;
    // Retry topics of their own, so the one partition holding the lift has no checkpoint.
    const failoverService = `${service}-failover`;
    const pool = await freshSchema('email');
    await liftBetween(key);
    const inEqiad: number[] = [];
    // eqiad's database is away for longer than eqiad lasts: the lift is due after the failover.
    const groups = await consumeAll(
      [
        {
          stream: 'notify.suppression',
          dcs: DCS,
          handler: watchedLift(pool, {
            dc: 'eqiad',
            key,
            seen: inEqiad,
            failure: (attempt) => (attempt === 0 ? new RetryLater(30_000) : undefined),
          }),
        },
        { stream: 'notify.erasure', dcs: DCS, handler: liftHandler(pool) },
      ],
      { service: failoverService, until: () => inEqiad.includes(0) },
    );
    assert.deepEqual(inEqiad, [0], 'eqiad only failed the lift');
    assert.deepEqual([...(await suppressedAmong(pool, [key]))], [key]);
    // MirrorMaker creates its copy of the new retry topic at its next topic refresh.
    const retries = retryTopic('eqiad', 'notify.suppression', failoverService, RETRY_MS);
    await eventually(
      async () =>
        (await withAdmin(codfw, (admin) => admin.listTopics())).includes(retries) ? true : undefined,
      `${retries} on codfw`,
      MIRROR_DEADLINE_MS,
    );
    await readTopic(codfw, retries, (ms) => ms.some((m) => m.key?.toString() === key), MIRROR_DEADLINE_MS);
    // Margin 0: codfw restarts just after what eqiad had processed, the complaint included, so the
    // retried lift (its partition has no checkpoint: from the log start) is all it reads of this key.
    await failoverGroups(groups, '0s');
    const inCodfw: number[] = [];
    await consumeAll(
      [
        {
          stream: 'notify.suppression',
          dcs: DCS,
          handler: watchedLift(pool, { dc: 'codfw', key, seen: inCodfw }),
        },
        { stream: 'notify.erasure', dcs: DCS, handler: liftHandler(pool) },
      ],
      { dc: 'codfw', ids: groups, service: failoverService, until: () => inCodfw.includes(1) },
    );
    assert.deepEqual(inCodfw, [1], `codfw handled the retried lift, and only it (attempts seen: ${inCodfw})`);
    assert.deepEqual([...(await suppressedAmong(pool, [key]))], [key]);
  });
});
