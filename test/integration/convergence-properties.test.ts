/**
 * Property tests of every materialization of a stream consumed from both datacenter prefixes,
 * against the real Postgres statements: random upserts and deletes of a few keys, from both
 * prefixes, delivered with duplicates in a random order (each prefix in its own order, the two
 * concurrently, upserts in bulk batches of random size where the store takes batches), end in the
 * state newest-version-wins gives (libs/convergence/version.ts), whatever the interleaving.
 * Each materialization runs in a Postgres schema of its own, migrated like the service's.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import type pg from 'pg';
import { compareVersions, type Version } from '../../libs/convergence/version.ts';
import { addressHash } from '../../libs/mail/verp.ts';
import type { NotifyUser } from '../../libs/schemas/types.generated.ts';
import {
  erasePerson as eraseBouncePerson,
  peopleAt,
  rememberPerson,
} from '../../services/bounce/people-store.ts';
import { liftSuppression, suppressedAmong, upsertSuppression } from '../../services/email/suppressions.ts';
import {
  devicesOf,
  erasePerson as erasePushPerson,
  removeDevices,
  upsertSubscription,
} from '../../services/push/subscriptions.ts';
import { createRouterStore } from '../../services/router/store.ts';
import { uniqueDc } from './harness.ts';
import { dropServiceSchemas, serviceSchema } from './service-schemas.ts';

const RUNS = Number(process.env.PROPERTY_RUNS ?? 60);
const T0 = Date.parse('2026-11-01T00:00:00Z');
const serviceSchemaOf = (service: string) => serviceSchema(service, `${service}_${uniqueDc()}`);

after(dropServiceSchemas);

/** One record of a key: an upsert carrying `value`, or a delete. */
interface Op<V> {
  key: string;
  prefix: 'eqiad' | 'codfw';
  version: Version;
  value: V | null;
}

function opArb<V>(keys: readonly string[], value: fc.Arbitrary<V>): fc.Arbitrary<Op<V>> {
  // Few instants and ids, so ties of event time (and of id) happen often.
  const version = fc.record({
    dt: fc.integer({ min: 0, max: 5 }).map((s) => T0 + s * 1000),
    id: fc.constantFrom('a', 'b', 'c'),
  });
  return fc
    .record({
      key: fc.constantFrom(...keys),
      prefix: fc.constantFrom('eqiad' as const, 'codfw' as const),
      deleted: fc.boolean(),
      version,
      value,
    })
    .map(({ key, prefix, deleted, version: v, value: x }) => ({
      key,
      prefix,
      version: deleted ? { dt: v.dt, deleted: true, id: '' } : { dt: v.dt, deleted: false, id: v.id },
      value: deleted ? null : x,
    }));
}

/** The ops with some delivered twice, in a random order, and cut into batches of random size. */
function deliveryArb<V>(ops: fc.Arbitrary<Op<V>[]>): fc.Arbitrary<{ ops: Op<V>[]; delivered: Op<V>[][] }> {
  // meta.id is unique per record: two upserts never share one (a duplicate is the same record).
  const unique = ops.map((list) =>
    list.map((op, i) =>
      op.version.deleted ? op : { ...op, version: { ...op.version, id: `${op.version.id}${i}` } },
    ),
  );
  return unique.chain((list) =>
    fc
      .record({
        dups: fc.array(fc.nat(list.length - 1), { maxLength: list.length }),
        order: fc.array(fc.double({ noNaN: true }), {
          minLength: list.length * 2,
          maxLength: list.length * 2,
        }),
        cuts: fc.array(fc.integer({ min: 1, max: 4 }), {
          minLength: list.length * 2,
          maxLength: list.length * 2,
        }),
      })
      .map(({ dups, order, cuts }) => {
        const all = [...list, ...dups.map((i) => list[i]!)];
        const shuffled = all
          .map((op, i) => ({ op, k: order[i]! }))
          .sort((a, b) => a.k - b.k)
          .map((e) => e.op);
        const batches: Op<V>[][] = [];
        for (let i = 0, c = 0; i < shuffled.length; c++) {
          batches.push(shuffled.slice(i, i + cuts[c]!));
          i += cuts[c]!;
        }
        return { ops: list, delivered: batches };
      }),
  );
}

/** What newest-version-wins leaves per key: the winning upsert's value, or nothing. */
function expected<V>(ops: readonly Op<V>[]): Map<string, V> {
  const winners = new Map<string, Op<V>>();
  for (const op of ops) {
    const seen = winners.get(op.key);
    if (!seen || compareVersions(seen.version, op.version) < 0) winners.set(op.key, op);
  }
  return new Map(
    [...winners].flatMap(([k, op]) => (op.value === null ? [] : [[k, op.value] as [string, V]])),
  );
}

/** Each prefix's batches in its own order, the two prefixes concurrently (as two partitions are). */
async function deliver<V>(
  batches: readonly Op<V>[][],
  apply: (batch: Op<V>[]) => Promise<void>,
): Promise<void> {
  const lanes = (['eqiad', 'codfw'] as const).map((prefix) =>
    batches.map((b) => b.filter((op) => op.prefix === prefix)).filter((b) => b.length > 0),
  );
  await Promise.all(
    lanes.map(async (lane) => {
      for (const batch of lane) await apply(batch);
    }),
  );
}

const KEYS = ['p1', 'p2', 'p3'];

describe('newest version wins, whatever the order', () => {
  describe('router: people from notify.user', () => {
    let db: pg.Pool;
    before(async () => {
      db = await serviceSchemaOf('router');
    });

    interface Person {
      email: string | null;
      locale: string;
      preferences: { category: string; channel: 'web' | 'email' | 'push'; enabled: boolean }[];
      muted_agents: string[];
    }
    const person = fc.record({
      email: fc.constantFrom(null, 'a@example.org', 'b@example.org'),
      locale: fc.constantFrom('en', 'de'),
      preferences: fc.uniqueArray(
        fc.record({
          category: fc.constantFrom('x', 'y'),
          channel: fc.constantFrom('web' as const, 'email' as const),
          enabled: fc.boolean(),
        }),
        { selector: (p) => `${p.category}/${p.channel}`, maxLength: 3 },
      ),
      // Empty lists travel to Postgres as missing fields: a newer empty one must still clear an older.
      muted_agents: fc.uniqueArray(fc.constantFrom('m1', 'm2'), { maxLength: 2 }),
    });

    test('upserts and erasures from both prefixes, duplicated and reordered', async () => {
      const store = createRouterStore(db);
      await fc.assert(
        fc.asyncProperty(
          deliveryArb(fc.array(opArb(KEYS, person), { minLength: 1, maxLength: 10 })),
          async ({ ops, delivered }) => {
            await db.query('TRUNCATE users, preference_changes, email_frequency_changes, throttle_counts');
            await deliver(delivered, async (batch) => {
              // Upserts go in bulk as a fetched batch does; deletes one by one as tombstones do.
              const upserts = batch.filter((op) => op.value !== null);
              const user = (op: Op<Person>): NotifyUser => ({
                meta: {
                  id: op.version.id,
                  dt: op.version.dt,
                  stream: 'notify.user',
                  dc: op.prefix,
                  producer: 't',
                  request_id: null,
                },
                user_id: op.key,
                timezone: 'UTC',
                last_active: null,
                email_frequency: 'instant',
                ...op.value!,
              });
              await Promise.all([
                store.applyUsers(upserts.map(user)),
                ...batch
                  .filter((op) => op.value === null)
                  .map((op) => store.eraseUser(op.key, op.version.dt)),
              ]);
            });
            const state = await store.loadBatch({
              eventIds: [],
              recipientIds: KEYS,
              throttleKeys: [],
              typeVolumeKeys: [],
            });
            const actual = new Map(
              [...state.recipients].map(([k, r]) => [
                k,
                {
                  email: r.email,
                  locale: r.locale,
                  preferences: sortPrefs(r.preferences),
                  muted_agents: [...r.mutedAgents].sort(),
                },
              ]),
            );
            const want = new Map(
              [...expected(ops)].map(([k, p]) => [
                k,
                {
                  email: p.email,
                  locale: p.locale,
                  preferences: sortPrefs(p.preferences),
                  muted_agents: [...p.muted_agents].sort(),
                },
              ]),
            );
            assert.deepEqual(actual, want);
          },
        ),
        { numRuns: RUNS },
      );
    });
  });

  describe('push: devices from notify.push-subscription, and erased people', () => {
    let db: pg.Pool;
    before(async () => {
      db = await serviceSchemaOf('push');
    });

    // The key is the token's hash: one token, one key (two keys never carry the same token).
    const device = fc.record({ user: fc.constantFrom('u1', 'u2') });
    const tokenOf = (key: string) => `tok-${key}`;
    const erasure = fc.record({
      user: fc.constantFrom('u1', 'u2'),
      dt: fc.integer({ min: 0, max: 5 }).map((s) => T0 + s * 1000),
    });

    test('subscriptions, removed tokens and person erasures, duplicated and reordered', async () => {
      await fc.assert(
        fc.asyncProperty(
          deliveryArb(fc.array(opArb(KEYS, device), { minLength: 1, maxLength: 10 })),
          fc.array(fc.record({ erasure, prefix: fc.constantFrom('eqiad' as const, 'codfw' as const) }), {
            maxLength: 3,
          }),
          async ({ ops, delivered }, erasures) => {
            await db.query('TRUNCATE subscriptions, erased_people');
            // A person's erasure travels on its own stream, so it lands anywhere among the devices.
            const withErasures = delivered.map((batch, i) => ({
              batch,
              erasures: erasures.filter((_, j) => j % delivered.length === i),
            }));
            await Promise.all(
              withErasures.map(async ({ batch, erasures: here }) => {
                await deliver([batch], async (lane) => {
                  for (const op of lane) {
                    if (op.value === null) await removeDevices(db, [op.key], op.version.dt);
                    else
                      await upsertSubscription(
                        db,
                        {
                          meta: {
                            id: op.version.id,
                            dt: op.version.dt,
                            stream: 'notify.push-subscription',
                            dc: op.prefix,
                            producer: 't',
                            request_id: null,
                          },
                          token_hash: op.key,
                          user_id: op.value.user,
                          provider: 'fcm',
                          token: tokenOf(op.key),
                          app: 'org.example',
                          locale: 'en',
                        },
                        10,
                      );
                  }
                });
                for (const e of here) await erasePushPerson(db, e.erasure.user, e.erasure.dt);
              }),
            );
            const erasedAt = new Map<string, number>();
            for (const { erasure: e } of erasures)
              erasedAt.set(e.user, Math.max(erasedAt.get(e.user) ?? -1, e.dt));
            const winners = new Map<string, Op<{ user: string }>>();
            for (const op of ops) {
              const seen = winners.get(op.key);
              if (!seen || compareVersions(seen.version, op.version) < 0) winners.set(op.key, op);
            }
            const want = new Map(
              [...winners].flatMap(([k, op]) =>
                op.value === null || (erasedAt.get(op.value.user) ?? -1) >= op.version.dt
                  ? []
                  : [[k, { user: op.value.user, token: tokenOf(k) }] as const],
              ),
            );
            const devices = await devicesOf(db, ['u1', 'u2']);
            const actual = new Map(
              [...devices.values()]
                .flat()
                .map((d) => [d.tokenHash, { user: d.userId, token: d.token }] as const),
            );
            assert.deepEqual(actual, want);
          },
        ),
        { numRuns: RUNS },
      );
    });
  });

  describe('bounce: who has an address, from notify.user', () => {
    let db: pg.Pool;
    before(async () => {
      db = await serviceSchemaOf('bounce');
    });

    test('addresses and erasures from both prefixes, duplicated and reordered', async () => {
      const email = fc.constantFrom(null, 'a@example.org', 'b@example.org');
      await fc.assert(
        fc.asyncProperty(
          deliveryArb(fc.array(opArb(KEYS, email), { minLength: 1, maxLength: 10 })),
          async ({ ops, delivered }) => {
            await db.query('TRUNCATE people');
            await deliver(delivered, async (batch) => {
              for (const op of batch) {
                if (op.version.deleted) await eraseBouncePerson(db, op.key, op.version.dt);
                else
                  await rememberPerson(db, {
                    meta: {
                      id: op.version.id,
                      dt: op.version.dt,
                      stream: 'notify.user',
                      dc: op.prefix,
                      producer: 't',
                      request_id: null,
                    },
                    user_id: op.key,
                    email: op.value,
                    locale: 'en',
                    timezone: 'UTC',
                    last_active: null,
                    email_frequency: 'instant',
                    preferences: [],
                    muted_agents: [],
                  });
              }
            });
            const want = new Map<string, string[]>();
            for (const [user, address] of expected(ops)) {
              if (address === null) continue;
              want.set(addressHash(address), [...(want.get(addressHash(address)) ?? []), user].sort());
            }
            const actual = new Map<string, string[]>();
            for (const address of ['a@example.org', 'b@example.org']) {
              const people = await peopleAt(db, addressHash(address));
              if (people.length > 0) actual.set(addressHash(address), people);
            }
            assert.deepEqual(actual, want);
          },
        ),
        { numRuns: RUNS },
      );
    });
  });

  describe('email: suppressions from notify.suppression', () => {
    let db: pg.Pool;
    before(async () => {
      db = await serviceSchemaOf('email');
    });

    test('suppressions and lifts from both prefixes, duplicated and reordered', async () => {
      const reason = fc.constantFrom('complaint' as const, 'hard_bounce' as const);
      await fc.assert(
        fc.asyncProperty(
          deliveryArb(fc.array(opArb(KEYS, reason), { minLength: 1, maxLength: 10 })),
          async ({ ops, delivered }) => {
            await db.query('TRUNCATE suppressions');
            await deliver(delivered, async (batch) => {
              for (const op of batch) {
                if (op.value === null) await liftSuppression(db, op.key, op.version.dt);
                else
                  await upsertSuppression(db, {
                    meta: {
                      id: op.version.id,
                      dt: op.version.dt,
                      stream: 'notify.suppression',
                      dc: op.prefix,
                      producer: 't',
                      request_id: null,
                    },
                    address_hash: op.key,
                    address: null,
                    reason: op.value,
                    until: null,
                    detail: null,
                  });
              }
            });
            assert.deepEqual([...(await suppressedAmong(db, KEYS))].sort(), [...expected(ops).keys()].sort());
          },
        ),
        { numRuns: RUNS },
      );
    });
  });
});

function sortPrefs<P extends { category: string; channel: string }>(prefs: readonly P[]): P[] {
  return prefs
    .map((p) => ({ ...p }))
    .sort((a, b) => `${a.category}/${a.channel}`.localeCompare(`${b.category}/${b.channel}`));
}
