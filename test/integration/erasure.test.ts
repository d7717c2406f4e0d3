/**
 * Erasure across both datacenters, on both real clusters: a person whose last upsert came from
 * codfw and who was then erased in eqiad (a notify.user tombstone) stays erased in the router's
 * tables after a replay of every group from the beginning, after a rebuild from empty tables (also
 * one where compaction has removed eqiad's tombstone and upserts, leaving codfw's upsert and the
 * notify.erasure record), and after a failover of the groups to codfw with `tidings failover`.
 *
 * The topics are the real, shared eqiad.* and codfw.* ones (MirrorMaker copies only those); the
 * person, the groups and the Postgres schema are this run's own. The materializer is the router's
 * own handlers (people-materializer.ts) in the consumer runtime.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { Kafka } from 'kafkajs';
import type pg from 'pg';
import { Registry } from 'prom-client';
import { type ConsumerRuntime, createConsumerRuntime } from '../../libs/kafka/consumer-runtime.ts';
import { topicFor } from '../../libs/kafka/topics.ts';
import { createSerde } from '../../libs/schemas/serde.ts';
import type { NotifyErasure } from '../../libs/schemas/types.generated.ts';
import { erasureHandler, userHandler } from '../../services/router/people-materializer.ts';
import { createRouterStore } from '../../services/router/store.ts';
import {
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
const person = `erasure-test-${run}`;
const DCS = ['eqiad', 'codfw'] as const;
const serde = createSerde({ registryUrl: REGISTRY_URL });

const eqiad = testKafka('eqiad');
const codfw = testKafka('codfw');
const publishers = publishersPerDc('erasure-test');
const freshSchema = (name: string) => serviceSchema('router', `router_erasure_${run}_${name}`);

interface Materializer {
  groups: string[];
  stop(): Promise<void>;
}

/**
 * The router's two people groups (notify.user, notify.erasure) as `dc` runs them, on `kafka`.
 * `userDcs` narrows the prefixes of notify.user, to play a log that compaction has cleaned.
 */
async function materialize(
  kafka: Kafka,
  dc: string,
  db: pg.Pool,
  name: string,
  userDcs: readonly string[] = DCS,
): Promise<Materializer> {
  const store = createRouterStore(db);
  const common = {
    kafka,
    codec: serde,
    log: quietLog,
    registry: new Registry(),
    service: 'router',
    dc,
    checkpointIntervalMs: 200,
  };
  const runtimes: ConsumerRuntime[] = [
    createConsumerRuntime({
      ...common,
      group: `erasure-${run}-${name}-users`,
      dcs: userDcs,
      stream: 'notify.user',
      handler: userHandler(store, dc),
    }),
    createConsumerRuntime({
      ...common,
      group: `erasure-${run}-${name}-erasures`,
      dcs: DCS,
      stream: 'notify.erasure',
      handler: erasureHandler(store),
    }),
  ];
  for (const runtime of runtimes) await runtime.start();
  const groups = [`erasure-${run}-${name}-users`, `erasure-${run}-${name}-erasures`];
  const topics = [
    ...userDcs.map((d) => topicFor(d, 'notify.user')),
    ...DCS.map((d) => topicFor(d, 'notify.erasure')),
  ];
  await untilCommitted(kafka, groups[0]!, topics.slice(0, userDcs.length), 'notify.user consumed', 120_000);
  await untilCommitted(kafka, groups[1]!, topics.slice(userDcs.length), 'notify.erasure consumed', 120_000);
  return {
    groups,
    async stop() {
      for (const runtime of runtimes) await runtime.stop();
    },
  };
}

/** What the router would route to: the person's row, if any, and whether it is a marker. */
async function stateOf(db: pg.Pool): Promise<{ routable: boolean; marker: boolean }> {
  const store = createRouterStore(db);
  const batch = await store.loadBatch({
    eventIds: [],
    recipientIds: [person],
    throttleKeys: [],
    typeVolumeKeys: [],
  });
  const { rows } = await db.query<{ erased: boolean }>('SELECT erased FROM users WHERE user_id = $1', [
    person,
  ]);
  return { routable: batch.recipients.has(person), marker: rows[0]?.erased === true };
}

function user(email: string) {
  return { user_id: person, email, locale: 'en', timezone: 'UTC', preferences: [], muted_agents: [] };
}

describe('an erased person stays erased', () => {
  let db: pg.Pool;
  let erasedAt = 0;

  before(async () => {
    await publishers.eqiad.publish('notify.user', user('first@example.org'));
    // The person's last upsert is codfw's; eqiad erases them after it.
    await publishers.codfw.publish('notify.user', user('last@example.org'));
    await new Promise((r) => setTimeout(r, 5));
    erasedAt = Date.now();
    await publishers.eqiad.tombstone('notify.user', person);
    // Both prefixes on both clusters before anything reads them.
    for (const [kafka, dc] of [
      [eqiad, 'codfw'],
      [codfw, 'eqiad'],
    ] as const) {
      await readTopic(
        kafka,
        topicFor(dc, 'notify.user'),
        (ms) => ms.some((m) => m.key?.toString() === person && (dc === 'codfw' || m.value === null)),
        MIRROR_DEADLINE_MS,
      );
    }
    db = await freshSchema('eqiad');
  });

  after(async () => {
    await dropServiceSchemas();
    for (const p of Object.values(publishers)) await p.close();
  });

  test('eqiad materializes the erasure, and records it on eqiad.notify.erasure with its event time', async () => {
    const m = await materialize(eqiad, 'eqiad', db, 'eqiad');
    await m.stop();
    assert.deepEqual(await stateOf(db), { routable: false, marker: true });
    const records = await readTopic(
      eqiad,
      topicFor('eqiad', 'notify.erasure'),
      (ms) => ms.some((m) => m.key?.toString() === `notify.user|${person}`),
      MIRROR_DEADLINE_MS,
    );
    const mine = await Promise.all(
      records
        .filter((r) => r.key?.toString() === `notify.user|${person}`)
        .map((r) => serde.decode('notify.erasure', r.value!) as Promise<NotifyErasure>),
    );
    assert.ok(mine.length >= 1);
    for (const e of mine) {
      assert.equal(e.stream, 'notify.user');
      assert.ok(
        Math.abs(e.meta.dt - erasedAt) < 5_000,
        `erasure time ${e.meta.dt} is the tombstone's, not later`,
      );
    }
  });

  test('a replay of every group from the beginning leaves the person erased', async () => {
    const m = await materialize(eqiad, 'eqiad', db, 'eqiad');
    await m.stop();
    await withAdmin(eqiad, async (admin) => {
      for (const [group, stream] of [
        [m.groups[0]!, 'notify.user'],
        [m.groups[1]!, 'notify.erasure'],
      ] as const) {
        for (const dc of DCS)
          await admin.resetOffsets({ groupId: group, topic: topicFor(dc, stream), earliest: true });
      }
    });
    const replay = await materialize(eqiad, 'eqiad', db, 'eqiad');
    await replay.stop();
    assert.deepEqual(await stateOf(db), { routable: false, marker: true });
  });

  test('a rebuild from empty tables leaves the person erased', async () => {
    const empty = await freshSchema('rebuild');
    const m = await materialize(eqiad, 'eqiad', empty, 'rebuild');
    await m.stop();
    assert.deepEqual(await stateOf(empty), { routable: false, marker: true });
  });

  test('a rebuild after compaction removed eqiad.notify.user (codfw upsert left) leaves the person erased', async () => {
    const empty = await freshSchema('compacted');
    const m = await materialize(eqiad, 'eqiad', empty, 'compacted', ['codfw']);
    await m.stop();
    assert.deepEqual(await stateOf(empty), { routable: false, marker: true });
  });

  test('after `tidings failover` of the groups to codfw, the person stays erased', async () => {
    await failoverGroups([`erasure-${run}-eqiad-users`, `erasure-${run}-eqiad-erasures`], '10m');
    // A stale copy of the person's record arrives after the failover too (a retried upstream write).
    const m = await materialize(codfw, 'eqiad', db, 'eqiad');
    await m.stop();
    assert.deepEqual(await stateOf(db), { routable: false, marker: true });
  });

  after(async () => {
    await Promise.all(
      [eqiad, codfw].map((kafka) =>
        withAdmin(kafka, async (admin) => {
          const mine = (await admin.listGroups()).groups
            .map((g) => g.groupId)
            .filter((g) => g.startsWith(`erasure-${run}-`));
          if (mine.length > 0) await admin.deleteGroups(mine).catch(() => undefined);
        }),
      ),
    );
  });
});
