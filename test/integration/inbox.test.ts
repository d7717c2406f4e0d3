/**
 * services/inbox as a process against the real stack: notify.web records (as the router writes
 * them) become entries with Echo-style bundles and folded summaries, counters agree with the rows,
 * duplicates and a replay by a fresh consumer group change nothing, tokens are checked, the live
 * stream resumes from Last-Event-ID, the per-person cap drops the oldest read ones first, and a
 * notify.user tombstone erases the inbox. The last suite runs one inbox per datacenter on the real
 * eqiad and codfw topics (MirrorMaker copies only those): a mark made in eqiad shows in codfw.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SignJWT } from 'jose';
import pg from 'pg';
import { DEFAULT_DATABASE_URL } from '../../libs/config/common.ts';
import { topicFor } from '../../libs/kafka/topics.ts';
import { createPublisher } from '../../libs/publish/publish.ts';
import { createSerde } from '../../libs/schemas/serde.ts';
import type { NotifyInboxState } from '../../libs/schemas/types.generated.ts';
import { signInboxToken, TOKEN_AUDIENCE } from '../../services/inbox/token.ts';
import {
  applyTestTopicPlan,
  BROKERS,
  deleteDcTopics,
  eventually,
  REGISTRY_URL,
  readTopic,
  runTidings,
  testKafka,
  testPublisher,
  traceStories,
  uniqueDc,
  untilCommitted,
  withAdmin,
} from './harness.ts';
import {
  INBOX_RETRY_DELAYS_MS,
  type InboxProcess,
  inboxRing,
  inboxToken,
  startInbox,
  webRecord,
} from './inbox-process.ts';

const HOUR = 3_600_000;
const kafka = testKafka('eqiad');
const db = new pg.Pool({ connectionString: DEFAULT_DATABASE_URL, max: 2 });
const serde = createSerde({ registryUrl: REGISTRY_URL });
const dc = uniqueDc();
const schema = `inbox_${dc}`;
const publisher = testPublisher(dc, 'test');
const cleanups: (() => Promise<unknown>)[] = [];
let inbox: InboxProcess;

before(async () => {
  await applyTestTopicPlan(kafka, dc, { services: ['inbox'], retryDelaysMs: INBOX_RETRY_DELAYS_MS });
  inbox = await startInbox({ dc, schema, env: { INBOX_MAX_PER_PERSON: '10', INBOX_BUNDLE_WINDOW: '1h' } });
});

after(async () => {
  await inbox?.stop();
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  await publisher.close();
  await deleteDcTopics(kafka, dc);
  await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await db.end();
});

const newUser = () => `u-${randomBytes(6).toString('hex')}`;

async function call(
  base: string,
  path: string,
  user: string,
  body?: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: {
      authorization: `Bearer ${await inboxToken(user)}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

interface EntryJson {
  id: string;
  kind: string;
  count: number;
  unread: number;
  category: string;
  title: string;
  actors: string[];
  notification_ids: string[];
}

async function entries(user: string, query = '', base = inbox.base): Promise<EntryJson[]> {
  const { status, json } = await call(base, `/v1/notifications?limit=100${query}`, user);
  assert.equal(status, 200);
  return json.entries as EntryJson[];
}

const counts = async (user: string, base = inbox.base) =>
  (await call(base, '/v1/counts', user)).json as { unread: number; unseen: number };

/** What the counters should say, counted from the rows. */
async function countedFromRows(user: string, inSchema = schema): Promise<{ unread: number; unseen: number }> {
  const { rows } = await db.query<{ unread: number; unseen: number }>(
    `SELECT count(*) FILTER (WHERE NOT n.read AND NOT n.archived)::int AS unread,
            count(*) FILTER (WHERE n.event_ms > p.seen_until AND NOT n.archived)::int AS unseen
     FROM ${inSchema}.people p LEFT JOIN ${inSchema}.notifications n USING (user_id) WHERE p.user_id = $1`,
    [user],
  );
  return rows[0] ?? { unread: 0, unseen: 0 };
}

async function assertCountersMatchRows(user: string): Promise<void> {
  const { unread, unseen } = await counts(user);
  assert.deepEqual(
    { unread, unseen },
    await countedFromRows(user),
    `counters of ${user} agree with the rows`,
  );
}

async function stored(user: string, n: number, inSchema = schema): Promise<void> {
  await eventually(async () => {
    const { rows } = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${inSchema}.notifications WHERE user_id = $1`,
      [user],
    );
    return rows[0]?.n === n ? true : undefined;
  }, `${n} notifications of ${user} stored`);
}

describe('storage, bundles and counts', () => {
  test('published events show as entries with bundles, folded summaries, sections and pagination', async () => {
    const user = newUser();
    const hour = Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR;
    const thanks = (dt: number, name: string) =>
      webRecord(user, {
        dt,
        category: 'thank-you-edit',
        event_type: 'thank-you-edit',
        bundle_key: 'thank-you-edit',
        priority: 4,
        title: `${name} thanked you`,
        agent: { id: name, name },
      });
    await publisher.publishMany([
      { stream: 'notify.web', record: thanks(hour + 60_000, 'Ann') },
      { stream: 'notify.web', record: thanks(hour + 120_000, 'Bob') },
      { stream: 'notify.web', record: thanks(hour + 180_000, 'Cy') },
      { stream: 'notify.web', record: webRecord(user, { dt: hour + 600_000 }) },
      {
        stream: 'notify.web',
        record: webRecord(user, { dt: hour + 1_200_000, folded: true, category: 'reverted', priority: 3 }),
      },
      {
        stream: 'notify.web',
        record: webRecord(user, { dt: hour + 1_260_000, folded: true, category: 'reverted', priority: 3 }),
      },
      // The next bundle window: a new entry.
      { stream: 'notify.web', record: thanks(hour + HOUR + 300_000, 'Dee') },
    ]);
    await stored(user, 7);

    const list = await entries(user);
    assert.deepEqual(
      list.map((e) => [e.kind, e.category, e.count, e.unread]),
      [
        ['bundle', 'thank-you-edit', 1, 1],
        ['folded', 'reverted', 2, 2],
        ['single', 'edit-user-talk', 1, 1],
        ['bundle', 'thank-you-edit', 3, 3],
      ],
    );
    assert.deepEqual(list[3]?.actors, ['Cy', 'Bob', 'Ann'], 'latest actors first');
    assert.equal(list[3]?.title, 'Cy thanked you', 'a bundle shows its newest notification');
    assert.deepEqual(await counts(user), { unread: 7, unseen: 7, seen_until: new Date(0).toISOString() });
    await assertCountersMatchRows(user);

    assert.deepEqual(
      (await entries(user, '&section=alert')).map((e) => e.category),
      ['edit-user-talk'],
      'priority 1 is an alert',
    );
    assert.deepEqual(
      (await entries(user, '&category=reverted')).map((e) => e.kind),
      ['folded'],
    );

    const first = await call(inbox.base, '/v1/notifications?limit=3', user);
    assert.equal((first.json.entries as EntryJson[]).length, 3);
    assert.ok(first.json.next_cursor);
    const second = await call(
      inbox.base,
      `/v1/notifications?limit=3&cursor=${first.json.next_cursor as string}`,
      user,
    );
    assert.deepEqual(
      [...(first.json.entries as EntryJson[]), ...(second.json.entries as EntryJson[])].map((e) => e.id),
      list.map((e) => e.id),
      'two pages hold every entry once, in order',
    );
    assert.equal(second.json.next_cursor, null);
  });

  test('a duplicate, and a replay by a fresh consumer group, double nothing and keep read marks', async () => {
    const user = newUser();
    const one = webRecord(user);
    const two = webRecord(user, { dt: Date.now() + 1 });
    await publisher.publish('notify.web', one);
    await publisher.publish('notify.web', two);
    await publisher.publish('notify.web', one);
    await untilCommitted(kafka, inbox.group, [topicFor(dc, 'notify.web')], 'the inbox to consume all');
    await stored(user, 2);
    assert.equal(
      (await call(inbox.base, '/v1/read', user, { ids: [one.notification.notification_id] })).status,
      200,
    );
    const before = { entries: await entries(user), counts: await counts(user) };
    assert.equal(before.counts.unread, 1);

    // A second inbox on the same schema with a new group reads both streams from the beginning.
    const replay = await startInbox({ dc, schema, group: `replay-${dc}` });
    cleanups.push(() => replay.stop());
    await untilCommitted(
      kafka,
      replay.group,
      [topicFor(dc, 'notify.web')],
      'the replaying inbox to consume notify.web',
    );
    await untilCommitted(
      kafka,
      `${replay.group}-state`,
      [topicFor(dc, 'notify.inbox-state')],
      'the replaying inbox to consume notify.inbox-state',
    );
    await replay.stop();
    assert.deepEqual({ entries: await entries(user), counts: await counts(user) }, before);
    await stored(user, 2);
    await assertCountersMatchRows(user);
  });

  test('read, unread, seen, archive and read-all move the counters, and travel on notify.inbox-state', async () => {
    const user = newUser();
    const now = Date.now();
    const records = [0, 1, 2, 3].map((i) => webRecord(user, { dt: now - 10_000 + i }));
    for (const record of records) await publisher.publish('notify.web', record);
    await stored(user, 4);
    const [a, b, c, d] = records.map((r) => r.notification.notification_id) as [
      string,
      string,
      string,
      string,
    ];

    let res = await call(inbox.base, '/v1/read', user, { ids: [a, b] });
    assert.deepEqual([res.status, res.json.unread], [200, 2]);
    res = await call(inbox.base, '/v1/unread', user, { ids: [b] });
    assert.equal(res.json.unread, 3);
    res = await call(inbox.base, '/v1/seen', user, {});
    assert.deepEqual([res.json.unread, res.json.unseen], [3, 0]);
    res = await call(inbox.base, '/v1/archive', user, { ids: [d] });
    assert.equal(res.json.unread, 2);
    assert.ok(
      !(await entries(user)).some((e) => e.notification_ids.includes(d)),
      'archived entries are not listed',
    );
    await assertCountersMatchRows(user);
    res = await call(inbox.base, '/v1/read', user, { up_to: c });
    assert.equal(res.json.unread, 0);
    assert.ok((await entries(user, '&unread=true')).length === 0);
    await assertCountersMatchRows(user);

    const published = await readTopic(
      kafka,
      topicFor(dc, 'notify.inbox-state'),
      (messages) => messages.filter((m) => m.key?.toString() === user).length >= 5,
    );
    const mine: NotifyInboxState[] = await Promise.all(
      published
        .filter((m) => m.key?.toString() === user)
        .map((m) => serde.decode('notify.inbox-state', m.value as Buffer)),
    );
    assert.deepEqual(
      mine.map((s) => s.action),
      ['read', 'unread', 'seen', 'archive', 'read'],
    );
    assert.deepEqual(
      mine[0]?.event_ids.sort(),
      [`e-${a}`, `e-${b}`].sort(),
      'other channels match by event id',
    );
    assert.equal(mine[4]?.up_to, now - 10_000 + 2, 'read-all carries the event time it covers');

    // The delivery trail: each notification stored, and the ones read told as read once, however
    // many marks covered them (b was read, unread, and read again by read-all).
    const story = await eventually(async () => {
      const stories = await traceStories(dc, '--user', user);
      const told = Object.fromEntries(
        stories.map((t) => [
          t.notification_id,
          t.steps.map((step) => `${step.stage}:${step.outcome}`).join(' '),
        ]),
      );
      return told[c]?.endsWith('read') ? told : undefined;
    }, 'the trail to tell the read marks');
    assert.deepEqual(story, {
      [a]: 'inbox:stored inbox:read',
      [b]: 'inbox:stored inbox:read',
      [c]: 'inbox:stored inbox:read',
      [d]: 'inbox:stored',
    });
  });

  test("marks on someone else's notification id, even before it arrives, change nothing of theirs", async () => {
    const victim = newUser();
    const attacker = newUser();
    // Notification ids are deterministic hashes: an attacker can know one before it exists.
    const record = webRecord(victim);
    const id = record.notification.notification_id;
    assert.equal((await call(inbox.base, '/v1/read', attacker, { ids: [id] })).status, 200);
    assert.equal((await call(inbox.base, '/v1/archive', attacker, { ids: [id] })).status, 200);
    await publisher.publish('notify.web', record);
    await stored(victim, 1);
    assert.equal((await counts(victim)).unread, 1);
    assert.deepEqual(
      (await entries(victim)).map((e) => [e.notification_ids, e.unread]),
      [[[id], 1]],
    );
    await call(inbox.base, '/v1/read', attacker, { ids: [id] });
    assert.equal((await counts(victim)).unread, 1, 'nor after it arrived');
  });

  test('bad requests are refused with what to fix', async () => {
    const user = newUser();
    assert.equal((await call(inbox.base, '/v1/read', user, { ids: 'x' })).status, 400);
    assert.equal((await call(inbox.base, '/v1/read', user, { ids: Array(501).fill('x') })).status, 400);
    assert.equal((await call(inbox.base, '/v1/notifications?limit=1000', user)).status, 400);
    assert.equal((await call(inbox.base, '/v1/notifications?cursor=bogus', user)).status, 400);
  });
});

describe('who may call it', () => {
  test('401 without a token, with a forged one, an expired one, or one that lives too long', async () => {
    const user = newUser();
    const url = `${inbox.base}/v1/counts`;
    const status = async (headers: Record<string, string>) => (await fetch(url, { headers })).status;
    const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

    assert.equal(await status({}), 401, 'no token');
    const other = randomBytes(32);
    const forged = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256', kid: 'k1' })
      .setSubject(user)
      .setAudience(TOKEN_AUDIENCE)
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(other);
    assert.equal(await status(bearer(forged)), 401, 'signed with a key the inbox does not have');
    const valid = await inboxToken(user);
    const [head, body] = valid.split('.');
    const tampered = JSON.parse(Buffer.from(body ?? '', 'base64url').toString()) as Record<string, unknown>;
    tampered.sub = 'someone-else';
    const swapped = `${head}.${Buffer.from(JSON.stringify(tampered)).toString('base64url')}.${valid.split('.')[2]}`;
    assert.equal(await status(bearer(swapped)), 401, 'subject changed after signing');
    const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${body}.`;
    assert.equal(await status(bearer(unsigned)), 401, 'alg none');
    const expired = await signInboxToken(inboxRing, user, { ttlMs: 60_000, now: Date.now() - 2 * HOUR });
    assert.equal(await status(bearer(expired)), 401, 'expired');
    const tooLong = await signInboxToken(inboxRing, user, { ttlMs: 48 * HOUR });
    assert.equal(await status(bearer(tooLong)), 401, 'lives longer than INBOX_TOKEN_MAX_TTL');
    assert.equal(await status(bearer(valid)), 200, 'the valid token');
    assert.equal(
      (await fetch(`${inbox.base}/v1/stream?access_token=${forged}`)).status,
      401,
      'the live stream checks its token too',
    );
    const refusals = await fetch(`http://127.0.0.1:${inbox.opsPort}/metrics`).then((r) => r.text());
    assert.match(refusals, /tidings_inbox_token_refusals_total\{reason="expired"/);
  });
});

interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

/** Reads Server-Sent Events until `until` holds, then disconnects. */
async function readEvents(
  user: string,
  until: (events: SseEvent[]) => boolean,
  { lastEventId, onOpen }: { lastEventId?: string; onOpen?: () => Promise<void> } = {},
): Promise<SseEvent[]> {
  const controller = new AbortController();
  const res = await fetch(`${inbox.base}/v1/stream`, {
    headers: {
      authorization: `Bearer ${await inboxToken(user)}`,
      ...(lastEventId ? { 'last-event-id': lastEventId } : {}),
    },
    signal: controller.signal,
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  const events: SseEvent[] = [];
  let buffer = '';
  const opened = onOpen?.();
  const deadline = setTimeout(() => controller.abort(), 30_000);
  try {
    while (!until(events)) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end = buffer.indexOf('\n\n');
      while (end >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event: SseEvent = { event: 'message', data: '' };
        let any = false;
        for (const line of block.split('\n')) {
          const [field, ...rest] = line.split(':');
          const value = rest.join(':').replace(/^ /, '');
          if (field === 'id') event.id = value;
          if (field === 'event') event.event = value;
          if (field === 'data') {
            event.data = value;
            any = true;
          }
        }
        if (any) events.push(event);
        end = buffer.indexOf('\n\n');
      }
    }
  } finally {
    clearTimeout(deadline);
    controller.abort();
    await opened;
  }
  return events;
}

describe('live updates', () => {
  test('an SSE client that reconnects with Last-Event-ID misses nothing', async () => {
    const user = newUser();
    const ids = (events: SseEvent[]) =>
      events
        .filter((e) => e.event === 'notification')
        .map((e) => (JSON.parse(e.data) as { notification_id: string }).notification_id);
    const firstTwo = [webRecord(user), webRecord(user)];
    // Each batch of notifications is followed by the counts after it.
    const seen = await readEvents(
      user,
      (events) => ids(events).length >= 2 && events.at(-1)?.event === 'counts',
      {
        onOpen: async () => {
          for (const record of firstTwo) await publisher.publish('notify.web', record);
        },
      },
    );
    assert.deepEqual(
      ids(seen),
      firstTwo.map((r) => r.notification.notification_id),
    );
    const last = seen.filter((e) => e.event === 'notification').at(-1)?.id;
    assert.ok(last);
    const counted = seen.filter((e) => e.event === 'counts').at(-1);
    assert.equal(
      (JSON.parse(counted?.data ?? '{}') as { unread: number }).unread,
      2,
      'the badge count comes live',
    );

    // Disconnected: three more arrive.
    const missed = [webRecord(user), webRecord(user), webRecord(user)];
    for (const record of missed) await publisher.publish('notify.web', record);
    await stored(user, 5);
    const resumed = await readEvents(user, (events) => ids(events).length >= 3, { lastEventId: last });
    assert.deepEqual(
      ids(resumed),
      missed.map((r) => r.notification.notification_id),
    );
  });
});

describe('retention and erasure', () => {
  test('the per-person cap removes the oldest read ones first, and a replay does not bring them back', async () => {
    const user = newUser();
    const now = Date.now();
    const records = Array.from({ length: 10 }, (_, i) => webRecord(user, { dt: now - 100_000 + i * 1000 }));
    await publisher.publishMany(records.map((record) => ({ stream: 'notify.web' as const, record })));
    await stored(user, 10);
    const idOf = (i: number) => records[i]?.notification.notification_id ?? '';
    await call(inbox.base, '/v1/read', user, { ids: [idOf(3), idOf(4)] });
    const more = [webRecord(user), webRecord(user, { dt: now + 1 })];
    for (const record of more) await publisher.publish('notify.web', record);
    await eventually(async () => {
      const { rows } = await db.query<{ id: string }>(
        `SELECT notification_id AS id FROM ${schema}.notifications WHERE user_id = $1`,
        [user],
      );
      const kept = new Set(rows.map((r) => r.id));
      return kept.size === 10 && !kept.has(idOf(3)) && !kept.has(idOf(4)) && kept.has(idOf(0))
        ? true
        : undefined;
    }, 'the two read ones to be dropped by the cap');
    await publisher.publish('notify.web', records[3]!);
    await untilCommitted(kafka, inbox.group, [topicFor(dc, 'notify.web')], 'the inbox to consume all');
    await stored(user, 10);
    await assertCountersMatchRows(user);
  });

  test('a notify.user tombstone erases the inbox, and older records stay out', async () => {
    const user = newUser();
    const record = webRecord(user, { dt: Date.now() - 1000 });
    await publisher.publish('notify.web', record);
    await stored(user, 1);
    await publisher.tombstone('notify.user', user);
    await stored(user, 0);
    await publisher.publish('notify.web', webRecord(user, { dt: Date.now() - 500 }));
    await untilCommitted(kafka, inbox.group, [topicFor(dc, 'notify.web')], 'the inbox to consume all');
    await stored(user, 0);
    assert.deepEqual((await counts(user)).unread, 0);
  });
});

describe('read state across datacenters (real eqiad and codfw topics)', () => {
  const run = randomBytes(4).toString('hex');
  const group = `test-inbox-${run}`;
  const inboxes: InboxProcess[] = [];
  const schemas = [`inbox_eqiad_${run}`, `inbox_codfw_${run}`] as const;
  const codfwEnv = { TIDINGS_DCS: 'eqiad,codfw', KAFKA_BROKERS: BROKERS.codfw.join(',') };
  const rollbackDir = mkdtempSync(join(tmpdir(), 'inbox-failover-'));
  const eqiadPublisher = createPublisher({
    brokers: BROKERS.eqiad,
    dc: 'eqiad',
    registryUrl: REGISTRY_URL,
    producer: 'test',
  });
  const codfwKafka = testKafka('codfw');

  before(async () => {
    // The stack's eqiad and codfw prefixes have the plan's retry topics, not the test's delays'.
    for (const [cluster, prefix] of [
      [kafka, 'eqiad'],
      [codfwKafka, 'codfw'],
    ] as const) {
      await applyTestTopicPlan(cluster, prefix, {
        services: ['inbox'],
        retryDelaysMs: INBOX_RETRY_DELAYS_MS,
      });
    }
    inboxes.push(
      await startInbox({ dc: 'eqiad', schema: schemas[0], group, env: { TIDINGS_DCS: 'eqiad,codfw' } }),
      await startInbox({ dc: 'codfw', schema: schemas[1], group, env: codfwEnv }),
    );
  });
  after(async () => {
    for (const p of inboxes) await p.stop();
    await eqiadPublisher.close();
    for (const s of schemas) await db.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
    for (const cluster of [kafka, codfwKafka]) {
      await withAdmin(cluster, (admin) =>
        admin.deleteGroups([group, `${group}-state`, `${group}-people`]).catch(() => undefined),
      );
    }
    rmSync(rollbackDir, { recursive: true, force: true });
  });

  test('a notification marked read in eqiad shows as read in codfw, also after `tidings failover`', async () => {
    const [eqiad, codfw] = inboxes as [InboxProcess, InboxProcess];
    const user = `u-${randomUUID()}`;
    const records = [webRecord(user), webRecord(user, { dt: Date.now() + 1 })];
    for (const record of records) await eqiadPublisher.publish('notify.web', record);
    await stored(user, 2, eqiad.schema);
    await stored(user, 2, codfw.schema);
    const read = records[0]!.notification.notification_id;
    assert.equal((await call(eqiad.base, '/v1/read', user, { ids: [read] })).json.unread, 1);

    const readInCodfw = async (base = codfw.base) => {
      const list = await entries(user, '', base);
      return list.find((e) => e.notification_ids.includes(read))?.unread === 0 ? list : undefined;
    };
    const shown = await eventually(() => readInCodfw(), 'codfw to show the notification read', 90_000);
    assert.equal(shown.length, 2);
    assert.equal((await counts(user, codfw.base)).unread, 1);

    // eqiad is lost: both inboxes stop, codfw's groups restart from eqiad's mirrored checkpoints.
    await untilCommitted(kafka, `${group}-state`, [topicFor('eqiad', 'notify.inbox-state')], 'eqiad state');
    for (const p of inboxes.splice(0)) await p.stop();
    const failover = (...args: string[]) =>
      runTidings(
        '-o',
        'json',
        'failover',
        '--from',
        'eqiad',
        '--to',
        'codfw',
        '--margin',
        '1m',
        '--group',
        group,
        `${group}-state`,
        ...args,
      );
    await eventually(
      async () => {
        const plan = await failover();
        return plan.status === 0 && plan.stdout.includes(`${group}-state`) ? true : undefined;
      },
      "eqiad's checkpoints of both groups to reach codfw",
      60_000,
    );
    const executed = await failover('--execute', '--rollback-file', join(rollbackDir, 'rollback.json'));
    assert.equal(executed.status, 0, executed.stderr);
    const restarted = await startInbox({ dc: 'codfw', schema: schemas[1], group, env: codfwEnv });
    inboxes.push(restarted);
    await untilCommitted(
      codfwKafka,
      `${group}-state`,
      [topicFor('eqiad', 'notify.inbox-state'), topicFor('codfw', 'notify.inbox-state')],
      'codfw to replay the state topics',
      60_000,
    );
    await untilCommitted(
      codfwKafka,
      group,
      [topicFor('eqiad', 'notify.web'), topicFor('codfw', 'notify.web')],
      'codfw to replay notify.web',
      60_000,
    );
    assert.ok(await readInCodfw(restarted.base), 'still read after the failover replay');
    assert.equal((await counts(user, restarted.base)).unread, 1);
    await stored(user, 2, codfw.schema);
  });
});
