/**
 * The router process (services/router/main.ts, production defaults) over 100,000 materialized
 * people, in a datacenter and a Postgres schema of its own.
 *
 * throughput: each round publishes BENCH_ROUTER_EVENTS events (default 20,000; 1–3 recipients,
 *   categories from the registry) while the router is stopped, then starts the router and times it
 *   from its first channel record to the commit of the last event. The baseline is the raw KafkaJS
 *   pipe of raw-pipe.ts with the same bytes in and out: the round's events (copied to a topic of
 *   their own with notify.event's partitions) in, and for each event the very records the router
 *   wrote for it out, its channel records and its notify.status (trail) records (to topics with
 *   those topics' partitions), in requests of at most a thousand records. Each round then
 *   publishes as many events again and routes them with the delivery trail off
 *   (DELIVERY_TRAIL=false), against a baseline writing their channel records only. The report
 *   gives medians over BENCH_ROUTER_ROUNDS (default 2), the ratios router/raw with the trail on
 *   and off (goal 0.5), trail on against the channel-only baseline, and trail on/off; and, since
 *   the rates follow how busy the machine is, the CPU per event of the router process and of the
 *   raw pipe over the same window, with their ratio.
 * latency: with the router running, events go out at BENCH_ROUTER_RATE per second (default 200)
 *   for BENCH_ROUTER_SECONDS (default 20); a reader of <dc>.notify.web takes the time from each
 *   notification's meta.dt (the event's publish time, which the router carries over) to its
 *   arrival. p50/p99/max in ms.
 * rebuild: the people are published first, then materialized from empty tables over the same topic
 *   in the consumer runtime: once with one statement per record (the baseline, for
 *   BENCH_ROUTER_BASELINE_SECONDS, default 20: at its rate all would take minutes), then
 *   BENCH_ROUTER_REBUILD_ROUNDS times (default 3) with the router's own handler
 *   (people-materializer.ts: one statement per fetched batch) until all are there. People per
 *   second from the first records the handler gets (the group join before them is not counted;
 *   the median of the rounds) and the ratio to the baseline (goal 20,000 people/s). The
 *   wall-clock rate follows how busy the machine is, so each rebuild also reports CPU per person:
 *   this process (the runtime, KafkaJS, Avro decoding and the handler), the handler's own
 *   JavaScript within it, and the Postgres backends doing the writes (local Postgres only); and
 *   where its wall time went: the share with a batch's write in flight, the share the event loop
 *   was busy, and the cores this process and the backends used on average.
 * BENCH_ROUTER_USERS sets the number of people (default 100,000).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import type { EventLoopUtilization } from 'node:perf_hooks';
import type { Admin, Kafka, KafkaMessage, Message, TopicMessages } from 'kafkajs';
import pg from 'pg';
import { Registry } from 'prom-client';
import { DEFAULT_DATABASE_URL } from '../../libs/config/common.ts';
import { migrate } from '../../libs/db/migrate.ts';
import { createPool } from '../../libs/db/pool.ts';
import { createProducer } from '../../libs/kafka/client.ts';
import { createConsumerRuntime, type RecordHandler } from '../../libs/kafka/consumer-runtime.ts';
import { createTopicsWithLeaders } from '../../libs/kafka/topic-admin.ts';
import { LOCAL_MAX_PARTITIONS, localPartitions } from '../../libs/kafka/topic-plan.ts';
import { readRanges } from '../../libs/kafka/topic-reader.ts';
import { topicFor } from '../../libs/kafka/topics.ts';
import type { Publisher, PublishItem } from '../../libs/publish/publish.ts';
import { createSerde } from '../../libs/schemas/serde.ts';
import type { Channel, EmailFrequency, NotifyUser, RecordInput } from '../../libs/schemas/types.generated.ts';
import { loadCategoryRegistry } from '../../services/router/categories.ts';
import { userHandler } from '../../services/router/people-materializer.ts';
import { createRouterStore, type RouterStore } from '../../services/router/store.ts';
import {
  applyTestTopicPlan,
  createConsumerTopics,
  deleteDcTopics,
  eventually,
  quietLog,
  REGISTRY_URL,
  serviceEnv,
  testKafka,
  testPublisher,
  uniqueDc,
  withAdmin,
} from '../integration/harness.ts';
import { backendCpuMs, backendCpuSpent, childCpuMs, processCpuMs } from './cpu.ts';
import { committedAll, rawPipe } from './raw-pipe.ts';
import { median, percentile, round } from './stats.ts';

const USERS = Number(process.env.BENCH_ROUTER_USERS ?? 100_000);
const EVENTS = Number(process.env.BENCH_ROUTER_EVENTS ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUTER_ROUNDS ?? 2);
const RATE = Number(process.env.BENCH_ROUTER_RATE ?? 200);
const SECONDS = Number(process.env.BENCH_ROUTER_SECONDS ?? 20);
const BASELINE_SECONDS = Number(process.env.BENCH_ROUTER_BASELINE_SECONDS ?? 20);
const REBUILD_ROUNDS = Number(process.env.BENCH_ROUTER_REBUILD_ROUNDS ?? 3);
const CHUNK = 5_000;
const TICK_MS = 50;
const DAY = 86_400_000;
const CHANNELS = ['notify.web', 'notify.email', 'notify.push'];
const ROUTER_MAIN = join(import.meta.dirname, '..', '..', 'services', 'router', 'main.ts');

const EVENT_PARTITIONS = localPartitions('notify.event');

export async function run(): Promise<Record<string, unknown>> {
  const kafka = testKafka('eqiad');
  const dc = uniqueDc();
  const schema = `router_${dc}`;
  const db = new pg.Pool({ connectionString: DEFAULT_DATABASE_URL, max: 2 });
  const publisher = testPublisher(dc, 'bench');
  const categories = [...(await loadCategoryRegistry()).keys()];
  const input = topicFor(dc, 'notify.event');
  const router = routerProcess(dc, schema);
  try {
    await applyTestTopicPlan(kafka, dc, { services: ['router'], maxPartitions: LOCAL_MAX_PARTITIONS });
    await createRawTopics(kafka, dc);
    await publishUsers(publisher, categories);
    const perRecord = await rebuild(kafka, dc, db, 'per_record', (store) => ({
      handle: (record) => store.applyUsers([record.value]),
    }));
    console.log(`one statement per record: ${describeRebuild(perRecord)} over ${BASELINE_SECONDS} s`);
    const bulk: Rebuild[] = [];
    for (let r = 0; r < REBUILD_ROUNDS; r++) {
      bulk.push(await rebuild(kafka, dc, db, `bulk_${r}`, (store) => userHandler(store, dc)));
      console.log(`the router's materializer, round ${r + 1}: ${describeRebuild(bulk.at(-1)!)}`);
    }
    const bulkRate = median(bulk.map((b) => b.perSecond));
    const perRecordRate = perRecord.perSecond;
    await router.start();
    await untilMaterialized(db, schema);

    const raw: number[] = [];
    const routerRates: number[] = [];
    const recipientRates: number[] = [];
    const outputRates: number[] = [];
    const trailOffRates: number[] = [];
    const rawOutputs: number[] = [];
    // The baseline for the trail-off pass: the same events' channel records only.
    const rawChannelsOnly: number[] = [];
    // notify.status records per channel record: what the trail adds to the router's output.
    const trailPerChannelRecord: number[] = [];
    // CPU per event of the router process and of the raw pipe (this process): what the machine's
    // other load moves much less than the rates.
    const routerCpu: number[] = [];
    const rawCpu: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      await router.stop();
      const recipients = await publishEvents(publisher, categories, r);
      const total = await withAdmin(kafka, (admin) => endTotal(admin, [input]));
      const outputEnds = () =>
        withAdmin(kafka, (admin) =>
          endOffsets(
            admin,
            OUTPUTS.map((c) => topicFor(dc, c)),
          ),
        );
      const ends = await outputEnds();
      const pass = await routerPass(kafka, dc, router, total);
      const seconds = pass.ms / 1000;
      routerRates.push(EVENTS / seconds);
      recipientRates.push(recipients / seconds);
      outputRates.push(pass.outputs / seconds);
      trailPerChannelRecord.push(pass.trail / pass.outputs);
      routerCpu.push(pass.cpuUsPerEvent);
      await router.stop();
      const baseline = await rawRouterPipe(kafka, dc, r, ends, { trail: true });
      raw.push(baseline.eventsPerSecond);
      rawCpu.push(baseline.cpuUsPerEvent);
      rawOutputs.push(baseline.outputs);

      await router.stop();
      await publishEvents(publisher, categories, ROUNDS + r);
      const offEnds = await outputEnds();
      const trailOff = await routerPass(
        kafka,
        dc,
        router,
        await withAdmin(kafka, (admin) => endTotal(admin, [input])),
        { DELIVERY_TRAIL: 'false' },
      );
      trailOffRates.push(EVENTS / (trailOff.ms / 1000));
      await router.stop();
      const channelsOnly = await rawRouterPipe(kafka, dc, ROUNDS + r, offEnds, { trail: false });
      rawChannelsOnly.push(channelsOnly.eventsPerSecond);
      console.log(
        `round ${r + 1}: raw ${Math.round(raw.at(-1)!)} events/s (${baseline.outputs} channel and trail records), router ${Math.round(routerRates.at(-1)!)} ` +
          `events/s (${Math.round(recipientRates.at(-1)!)} recipients/s, ${Math.round(outputRates.at(-1)!)} ` +
          `channel records/s); with the trail off ${Math.round(trailOffRates.at(-1)!)} events/s against raw ` +
          `${Math.round(channelsOnly.eventsPerSecond)} events/s (${channelsOnly.outputs} channel records); ` +
          `CPU per event router ${Math.round(routerCpu.at(-1)!)} µs, raw ${Math.round(rawCpu.at(-1)!)} µs`,
      );
    }

    // The last pass left the router running with the trail off: latency is the production default's.
    await router.stop();
    await router.start();
    const latency = await latencyPass(kafka, dc, publisher, categories);
    const rawMedian = median(raw);
    const routerMedian = median(routerRates);
    const result = {
      users: USERS,
      users_materialized_per_s: Math.round(bulkRate),
      users_materialized_per_s_rounds: bulk.map((b) => Math.round(b.perSecond)),
      users_materialized_per_s_one_statement_per_record: Math.round(perRecordRate),
      ratio_bulk_to_per_record: round(bulkRate / perRecordRate),
      goal_users_materialized_per_s: 20_000,
      rebuild_cpu_us_per_person: cpuPerPerson(bulk),
      rebuild_cpu_us_per_person_one_statement_per_record: cpuPerPerson([perRecord]),
      rebuild_wall_time: wallTime(bulk),
      events_per_round: EVENTS,
      rounds: ROUNDS,
      partitions: EVENT_PARTITIONS,
      raw_events_per_s: raw.map(Math.round),
      raw_records: rawOutputs,
      router_events_per_s: routerRates.map(Math.round),
      router_recipients_per_s: recipientRates.map(Math.round),
      router_channel_records_per_s: outputRates.map(Math.round),
      raw_median_events_per_s: Math.round(rawMedian),
      router_median_events_per_s: Math.round(routerMedian),
      router_median_recipients_per_s: Math.round(median(recipientRates)),
      raw_channels_only_events_per_s: rawChannelsOnly.map(Math.round),
      raw_channels_only_median_events_per_s: Math.round(median(rawChannelsOnly)),
      // Trail on against a baseline writing the same channel and trail records; trail off against
      // one writing the same channel records; and trail on against that (what earlier runs reported).
      ratio_router_to_raw: round(routerMedian / rawMedian),
      ratio_router_trail_off_to_raw: round(median(trailOffRates) / median(rawChannelsOnly)),
      ratio_router_to_raw_channels_only: round(routerMedian / median(rawChannelsOnly)),
      goal_ratio: 0.5,
      router_trail_off_events_per_s: trailOffRates.map(Math.round),
      router_trail_off_median_events_per_s: Math.round(median(trailOffRates)),
      ratio_trail_on_to_off: round(routerMedian / median(trailOffRates)),
      trail_records_per_channel_record: round(median(trailPerChannelRecord), 2),
      router_cpu_us_per_event: routerCpu.map(Math.round),
      raw_cpu_us_per_event: rawCpu.map(Math.round),
      ratio_cpu_raw_to_router: round(median(rawCpu) / median(routerCpu)),
      latency: { rate_per_s: RATE, seconds: SECONDS, ...latency },
    };
    console.log(
      `router: ${result.router_median_events_per_s} events/s vs raw ${result.raw_median_events_per_s} ` +
        `events/s (ratio ${result.ratio_router_to_raw}, goal ${result.goal_ratio}); trail on/off ` +
        `${result.ratio_trail_on_to_off}; latency at ${RATE}/s ` +
        `p50 ${latency.p50_ms} ms, p99 ${latency.p99_ms} ms, max ${latency.max_ms} ms`,
    );
    return result;
  } finally {
    await router.stop();
    await publisher.close();
    await deleteDcTopics(kafka, dc);
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await db.end();
  }
}

/** What the router writes for an event: its channel records and, with the trail on, its notify.status records. */
const OUTPUTS = [...CHANNELS, 'notify.status'];

/** The baseline's sinks: one per topic the router writes, with that topic's partitions. */
const rawChannel = (dc: string, stream: string) => topicFor(dc, `bench.raw.${stream}`);

async function createRawTopics(kafka: Kafka, dc: string): Promise<void> {
  await withAdmin(kafka, (admin) =>
    createTopicsWithLeaders(
      admin,
      OUTPUTS.map((c) => ({ topic: rawChannel(dc, c), numPartitions: localPartitions(c) })),
    ),
  );
}

async function endOffsets(admin: Admin, topics: readonly string[]): Promise<Map<string, number>> {
  const ends = new Map<string, number>();
  for (const topic of topics) {
    for (const p of await admin.fetchTopicOffsets(topic)) ends.set(`${topic}:${p.partition}`, Number(p.high));
  }
  return ends;
}

/** Every record of `topics` from `from` (per topic:partition, default 0) to their end now. */
async function readFrom(
  kafka: Kafka,
  topics: readonly string[],
  from: ReadonlyMap<string, number>,
  onRecord: (topic: string, partition: number, message: KafkaMessage) => void,
): Promise<void> {
  const ends = await withAdmin(kafka, (admin) => endOffsets(admin, topics));
  const ranges = [...ends].map(([at, to]) => {
    const [topic, partition] = [at.slice(0, at.lastIndexOf(':')), Number(at.slice(at.lastIndexOf(':') + 1))];
    return { topic, partition, from: from.get(at) ?? 0, to };
  });
  await readRanges(kafka, {
    ranges,
    timeoutMs: 300_000,
    onRecord: ({ topic, partition, message }) => {
      onRecord(topic, partition, message);
      return undefined;
    },
  });
}

/** Requests of at most a thousand records, each with its records by topic, as the router's outbox sends them. */
function requests(records: readonly { topic: string; message: Message }[]): TopicMessages[][] {
  const out: TopicMessages[][] = [];
  for (let start = 0; start < records.length; start += 1_000) {
    const byTopic = new Map<string, Message[]>();
    for (const { topic, message } of records.slice(start, start + 1_000)) {
      const messages = byTopic.get(topic) ?? [];
      messages.push(message);
      byTopic.set(topic, messages);
    }
    out.push([...byTopic].map(([topic, messages]) => ({ topic, messages })));
  }
  return out;
}

/** The event a record the router wrote is for (a trail record of no event has none). */
async function eventIdOf(
  serde: ReturnType<typeof createSerde>,
  stream: string,
  value: Buffer,
): Promise<string | undefined> {
  if (stream === 'notify.status') return (await serde.decode('notify.status', value)).event_id ?? undefined;
  return (await serde.decode(stream as 'notify.web', value)).notification.event_id;
}

/**
 * The raw KafkaJS pipe with the router's bytes in and out: round `r`'s events, copied (untimed)
 * to a topic of their own in their partitions, in; for each event the records the router wrote
 * for it (read from `ends`, the topics' ends before its pass), out: its channel records and, when
 * `trail`, its notify.status records too. Events per second, and how many records it wrote.
 */
async function rawRouterPipe(
  kafka: Kafka,
  dc: string,
  r: number,
  ends: ReadonlyMap<string, number>,
  { trail }: { trail: boolean },
): Promise<{ eventsPerSecond: number; cpuUsPerEvent: number; outputs: number }> {
  const serde = createSerde({ registryUrl: REGISTRY_URL });
  const prefix = `bench-r${r}-`;
  const outputs = new Map<string, { topic: string; message: Message }[]>();
  let outputCount = 0;
  const decodes: Promise<void>[] = [];
  const written = trail ? OUTPUTS : CHANNELS;
  await readFrom(
    kafka,
    written.map((c) => topicFor(dc, c)),
    ends,
    (topic, _partition, m) => {
      const stream = written.find((c) => topic === topicFor(dc, c))!;
      decodes.push(
        eventIdOf(serde, stream, m.value!).then((eventId) => {
          if (!eventId?.startsWith(prefix)) return;
          const list = outputs.get(eventId) ?? [];
          list.push({
            topic: rawChannel(dc, stream),
            message: { key: m.key, value: m.value, headers: m.headers },
          });
          outputs.set(eventId, list);
          outputCount++;
        }),
      );
    },
  );
  await Promise.all(decodes);

  const input = topicFor(dc, `bench.raw-in-${r}${trail ? '-trail' : ''}`);
  await withAdmin(kafka, (admin) =>
    createTopicsWithLeaders(admin, [{ topic: input, numPartitions: EVENT_PARTITIONS }]),
  );
  const events: Message[] = [];
  await readFrom(kafka, [topicFor(dc, 'notify.event')], new Map(), (_topic, partition, m) => {
    if (m.key?.toString('utf8').startsWith(prefix))
      events.push({ key: m.key, value: m.value, headers: m.headers, partition, timestamp: m.timestamp });
  });
  const producer = createProducer(kafka);
  await producer.connect();
  try {
    for (let start = 0; start < events.length; start += CHUNK) {
      await producer.send({ topic: input, acks: -1, messages: events.slice(start, start + CHUNK) });
    }
  } finally {
    await producer.disconnect();
  }

  const { perSecond: eventsPerSecond, cpuUsPerRecord: cpuUsPerEvent } = await rawPipe({
    kafka,
    input,
    output: rawChannel(dc, 'notify.web'),
    records: events.length,
    partitions: EVENT_PARTITIONS,
    produce: (messages) => requests(messages.flatMap((m) => outputs.get(m.key!.toString('utf8')) ?? [])),
  });
  return { eventsPerSecond, cpuUsPerEvent, outputs: outputCount };
}

interface RouterProcess {
  /** `env`: settings on top of the production defaults, for this start only. */
  start(env?: Record<string, string>): Promise<void>;
  stop(): Promise<void>;
  /** CPU ms the running router has used so far. */
  cpuMs(): Promise<number>;
}

/** The router as it runs in production: its default settings, only its datacenter and schema are the bench's. */
function routerProcess(dc: string, schema: string): RouterProcess {
  let child: ChildProcess | undefined;
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  return {
    async start(env = {}) {
      if (child && child.exitCode === null) throw new Error('the router is already running');
      child = spawn(process.execPath, [ROUTER_MAIN], {
        env: serviceEnv(dc, port, {
          DATABASE_SCHEMA: schema,
          ...env,
        }),
        stdio: ['ignore', 'inherit', 'inherit'],
      });
      await eventually(
        async () => {
          if (child?.exitCode !== null) throw new Error(`router exited with ${child?.exitCode}`);
          const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
          return res?.ok ? true : undefined;
        },
        'the router to be ready',
        60_000,
      );
    },
    async stop() {
      if (!child || child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
    async cpuMs() {
      if (!child?.pid) throw new Error('the router is not running');
      return childCpuMs(child.pid);
    },
  };
}

/** Deterministic spread of choices, so every run routes the same mix. */
function pick<T>(options: readonly T[], n: number): T {
  return options[n % options.length]!;
}

const LOCALES = [
  ['en', 'UTC'],
  ['en', 'America/New_York'],
  ['en', 'Europe/London'],
  ['de', 'Europe/Berlin'],
  ['fr', 'Europe/Paris'],
  ['es', 'America/Mexico_City'],
  ['ja', 'Asia/Tokyo'],
] as const;
const FREQUENCIES: EmailFrequency[] = [
  'instant',
  'instant',
  'instant',
  'instant',
  'daily',
  'weekly',
  'never',
];
const PREF_CHANNELS: Channel[] = ['web', 'email', 'push'];

/**
 * Most people have defaults; about a third turned a category off somewhere, one in ten has no
 * confirmed email, one in eight has been away long enough to get no email, one in twenty mutes someone.
 */
function userRecord(i: number, categories: readonly string[], now: number): PublishItem {
  const [locale, timezone] = pick(LOCALES, i * 7);
  const preferences =
    i % 3 === 0
      ? Array.from({ length: 1 + (i % 4) }, (_, k) => ({
          category: pick(categories, i + k * 5),
          channel: pick(PREF_CHANNELS, i + k),
          enabled: k % 3 === 2,
        }))
      : [];
  const unique = new Map(preferences.map((p) => [`${p.category}/${p.channel}`, p]));
  return {
    stream: 'notify.user',
    record: {
      user_id: `u${i}`,
      email: i % 10 === 9 ? null : `u${i}@example.org`,
      locale,
      timezone,
      last_active: now - (i % 8 === 7 ? 60 * DAY : (i % 14) * DAY),
      email_frequency: pick(FREQUENCIES, i * 3),
      preferences: [...unique.values()],
      muted_agents: i % 20 === 0 ? [`u${(i * 31) % USERS}`] : [],
    },
  };
}

/** Publishes every user, before any materializer runs: what a rebuild from empty tables reads. */
async function publishUsers(publisher: Publisher, categories: readonly string[]): Promise<void> {
  const now = Date.now();
  for (let start = 0; start < USERS; start += CHUNK) {
    const count = Math.min(CHUNK, USERS - start);
    await publisher.publishMany(
      Array.from({ length: count }, (_, j) => userRecord(start + j, categories, now)),
    );
  }
}

async function untilMaterialized(db: pg.Pool, schema: string): Promise<void> {
  await eventually(
    async () => {
      const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${schema}.users`);
      return rows[0]?.n === USERS ? true : undefined;
    },
    `${USERS} users materialized`,
    600_000,
  );
}

interface Rebuild {
  people: number;
  perSecond: number;
  seconds: number;
  /** Wall ms with at least one batch's write (prepareBatch) in flight; null without prepareBatch. */
  writingMs: number | null;
  /** Event-loop utilization over the rebuild: 1 means the process never waited for I/O. */
  eventLoopBusy: number;
  /**
   * CPU ms of this process (its group join included), of the handler's own JavaScript within it,
   * and of the Postgres backends.
   */
  nodeCpuMs: number;
  handlerMs: number | null;
  postgresCpuMs: number | null;
}

function describeRebuild(r: Rebuild): string {
  const cpu = cpuPerPerson([r]);
  const wall = wallTime([r]);
  return (
    `${Math.round(r.perSecond)} users/s; CPU per person ${cpu.node} µs here ` +
    `(the handler's prepareBatch ${cpu.handler_js ?? '–'}), Postgres ${cpu.postgres ?? 'unknown'} µs; ` +
    `a write in flight ${wall.write_in_flight_share ?? '–'} of the time, event loop busy ` +
    `${wall.event_loop_busy_share}, cores used here ${wall.node_cores} and by Postgres ${wall.postgres_cores ?? '–'}`
  );
}

/**
 * Where a rebuild's wall time went (medians): the share of it with a write in flight and the
 * share the event loop was busy, and the cores this process and the backends kept busy on average.
 * A process that waits on Postgres has a write in flight and an idle loop; one that gets too little
 * of a busy machine has a busy loop and uses far less than a core.
 */
function wallTime(rebuilds: readonly Rebuild[]) {
  const m = (f: (r: Rebuild) => number) => round(median(rebuilds.map(f)), 2);
  const known = (f: (r: Rebuild) => number | null) =>
    rebuilds.every((r) => f(r) !== null) ? m((r) => f(r)!) : null;
  return {
    write_in_flight_share: known((r) => r.writingMs && r.writingMs / (1000 * r.seconds)),
    event_loop_busy_share: m((r) => r.eventLoopBusy),
    node_cores: m((r) => r.nodeCpuMs / (1000 * r.seconds)),
    postgres_cores: known((r) => r.postgresCpuMs && r.postgresCpuMs / (1000 * r.seconds)),
  };
}

/** Medians over the rebuilds, in µs of CPU per person materialized. */
function cpuPerPerson(rebuilds: readonly Rebuild[]) {
  const us = (ms: (r: Rebuild) => number) => round(median(rebuilds.map((r) => (1000 * ms(r)) / r.people)), 1);
  const known = (ms: (r: Rebuild) => number | null) =>
    rebuilds.every((r) => ms(r) !== null) ? us((r) => ms(r)!) : null;
  return {
    node: us((r) => r.nodeCpuMs),
    handler_js: known((r) => r.handlerMs),
    postgres: known((r) => r.postgresCpuMs),
  };
}

/**
 * When the handler first got records (the rebuild's rate starts there: the group join before it
 * is no part of materializing), and the handler's own JavaScript, as CPU time of the main thread
 * (wall time would count the moments a busy machine gives the process no CPU): prepareBatch until
 * it first waits, which builds and sends the batch's statement. Only the bulk handler has one; its
 * handle() merely checks that the batch was applied, and timing each record would cost more than
 * that check.
 */
function timed<T, B>(
  handler: RecordHandler<T, B>,
): {
  handler: RecordHandler<T, B>;
  firstAt: () => number | null;
  /** The event loop's use since the first records. */
  loopSinceFirst: () => number;
  ms: () => number | null;
  writingMs: () => number | null;
} {
  const { prepareBatch } = handler;
  let firstAt: number | null = null;
  let loopAtFirst: EventLoopUtilization | undefined;
  const first = () => {
    if (firstAt !== null) return;
    firstAt = performance.now();
    loopAtFirst = performance.eventLoopUtilization();
  };
  let ms = 0;
  // Batches of several partitions write at once: the time with any write in flight, not their sum.
  let writing = 0;
  let writingSince = 0;
  let writingMs = 0;
  const settled = () => {
    if (--writing === 0) writingMs += performance.now() - writingSince;
  };
  return {
    handler: {
      ...handler,
      ...(prepareBatch && {
        prepareBatch(records) {
          first();
          if (writing++ === 0) writingSince = performance.now();
          const before = process.threadCpuUsage();
          try {
            const prepared = prepareBatch.call(handler, records);
            prepared.then(settled, settled);
            return prepared;
          } finally {
            const { user, system } = process.threadCpuUsage(before);
            ms += (user + system) / 1000;
          }
        },
      }),
      handle(record, context) {
        first();
        return handler.handle(record, context);
      },
    },
    firstAt: () => firstAt,
    loopSinceFirst: () => performance.eventLoopUtilization(loopAtFirst).utilization,
    ms: () => (prepareBatch ? ms : null),
    writingMs: () => (prepareBatch ? writingMs : null),
  };
}

/**
 * A rebuild from empty tables over the published people, by the consumer runtime with `handler`
 * in a group and a copy of the router's schema of its own: until all are there, or for
 * BASELINE_SECONDS for the baseline, timed from the first records the handler got. The router process itself is not timed: its groups have fixed
 * names, and another router joining them on a shared cluster rebalances it mid-run.
 */
async function rebuild(
  kafka: Kafka,
  dc: string,
  db: pg.Pool,
  name: string,
  handler: (store: RouterStore) => RecordHandler<NotifyUser, { applied: boolean }>,
): Promise<Rebuild> {
  const schema = `router_${dc}_${name}`;
  const applicationName = `bench-${dc}-${name}`;
  const pool = createPool({ url: DEFAULT_DATABASE_URL, schema, applicationName });
  await migrate(pool, {
    schema,
    dir: join(import.meta.dirname, '..', '..', 'services', 'router', 'migrations'),
    log: quietLog,
  });
  const measured = timed(handler(createRouterStore(pool)));
  const runtime = createConsumerRuntime<'notify.user', { applied: boolean }>({
    kafka,
    codec: createSerde({ registryUrl: REGISTRY_URL }),
    log: quietLog,
    registry: new Registry(),
    service: 'bench',
    group: `bench-${name}-${dc}`,
    dc,
    dcs: [dc],
    stream: 'notify.user',
    handler: measured.handler,
  });
  await createConsumerTopics(kafka, dc, { stream: 'notify.user', service: 'bench' });
  try {
    const backendsBefore = await backendCpuMs(db, applicationName);
    const cpuBefore = processCpuMs();
    await runtime.start();
    if (name === 'per_record') await new Promise((resolve) => setTimeout(resolve, BASELINE_SECONDS * 1000));
    else await untilMaterialized(db, schema);
    const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${schema}.users`);
    const seconds = (performance.now() - measured.firstAt()!) / 1000;
    const nodeCpuMs = processCpuMs() - cpuBefore;
    const eventLoopBusy = measured.loopSinceFirst();
    const postgresCpuMs = backendCpuSpent(backendsBefore, await backendCpuMs(db, applicationName));
    const people = rows[0]!.n;
    return {
      people,
      perSecond: people / seconds,
      seconds,
      writingMs: measured.writingMs(),
      eventLoopBusy,
      nodeCpuMs,
      handlerMs: measured.ms(),
      postgresCpuMs,
    };
  } finally {
    await runtime.stop();
    await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await pool.end();
  }
}

function eventRecord(id: string, i: number, categories: readonly string[]): RecordInput<'notify.event'> {
  const category = pick(categories, i);
  // A multiplicative spread walks all users without clustering on one partition.
  const recipients = Array.from({ length: 1 + (i % 3) }, (_, k) => `u${(i * 7919 + k * 104_729) % USERS}`);
  return {
    event_id: id,
    type: category,
    category,
    agent: { id: `u${(i * 15_485_863) % USERS}`, name: 'Bench Agent' },
    recipients,
    title: 'Something happened',
    url: `https://example.org/wiki/Page_${i}`,
    extra: { section: 'bench' },
  };
}

/** Publishes one round of events; resolves with the number of recipients they name. */
async function publishEvents(
  publisher: Publisher,
  categories: readonly string[],
  r: number,
): Promise<number> {
  let recipients = 0;
  for (let start = 0; start < EVENTS; start += CHUNK) {
    const items = Array.from({ length: Math.min(CHUNK, EVENTS - start) }, (_, j) => {
      const record = eventRecord(`bench-r${r}-${start + j}`, start + j, categories);
      recipients += record.recipients.length;
      return { stream: 'notify.event', record } satisfies PublishItem;
    });
    await publisher.publishMany(items);
  }
  return recipients;
}

async function endTotal(admin: Admin, topics: readonly string[]): Promise<number> {
  let total = 0;
  for (const topic of topics) {
    for (const p of await admin.fetchTopicOffsets(topic)) total += Number(p.high);
  }
  return total;
}

/**
 * Starts the router on a filled input and times it from its first channel record to the commit of
 * the input's last record. Its start-up (migrations, group joins) is not counted.
 */
async function routerPass(
  kafka: Kafka,
  dc: string,
  router: RouterProcess,
  inputTotal: number,
  env: Record<string, string> = {},
): Promise<{ ms: number; cpuUsPerEvent: number; outputs: number; trail: number }> {
  const channels = CHANNELS.map((s) => topicFor(dc, s));
  const status = [topicFor(dc, 'notify.status')];
  return withAdmin(kafka, async (admin) => {
    const before = await endTotal(admin, channels);
    const trailBefore = await endTotal(admin, status);
    const starting = router.start(env);
    let failed: unknown;
    starting.catch((err: unknown) => {
      failed = err;
    });
    let started = 0;
    let cpuAtStart = 0;
    while (!started) {
      if (failed) throw failed;
      if ((await endTotal(admin, channels)) > before) {
        started = performance.now();
        cpuAtStart = await router.cpuMs();
      } else await new Promise((r) => setTimeout(r, 10));
    }
    const done = await committedAll(kafka, 'router', topicFor(dc, 'notify.event'), inputTotal);
    const cpuAtEnd = await router.cpuMs();
    await starting;
    return {
      ms: done - started,
      cpuUsPerEvent: ((cpuAtEnd - cpuAtStart) * 1000) / EVENTS,
      outputs: (await endTotal(admin, channels)) - before,
      trail: (await endTotal(admin, status)) - trailBefore,
    };
  });
}

/** Steady publishing to the running router; publish → notify.web arrival per notification. */
async function latencyPass(
  kafka: Kafka,
  dc: string,
  publisher: Publisher,
  categories: readonly string[],
): Promise<{ events: number; notifications: number; p50_ms: number; p99_ms: number; max_ms: number }> {
  const serde = createSerde({ registryUrl: REGISTRY_URL });
  const web = topicFor(dc, 'notify.web');
  const latencies: number[] = [];
  const reached = new Map<number, number>();
  const reader = kafka.consumer({ groupId: `bench-latency-${dc}`, maxWaitTimeInMs: 10 });
  const joined = new Promise<void>((resolve) => reader.on(reader.events.GROUP_JOIN, () => resolve()));
  await reader.connect();
  // Only records that arrive from now on: a fresh group starts at the end of the topic.
  await reader.subscribe({ topic: web, fromBeginning: false });
  await reader.run({
    eachBatch: async ({ batch }) => {
      const at = Date.now();
      for (const m of batch.messages) {
        const value = await serde.decode('notify.web', m.value!);
        if (value.notification.event_id.startsWith('bench-lat-')) latencies.push(at - value.meta.dt);
      }
      reached.set(batch.partition, Number(batch.lastOffset()) + 1);
    },
  });
  await joined;
  // The fresh group looks up the end offsets after joining; give it a moment before publishing.
  await new Promise((r) => setTimeout(r, 1_000));
  const startEnds = await withAdmin(kafka, (admin) => admin.fetchTopicOffsets(web));
  for (const p of startEnds) if (!reached.has(p.partition)) reached.set(p.partition, Number(p.high));

  const perTick = Math.max(1, Math.round((RATE * TICK_MS) / 1000));
  const ticks = Math.round((SECONDS * 1000) / TICK_MS);
  const sends: Promise<unknown>[] = [];
  const t0 = performance.now();
  for (let t = 0; t < ticks; t++) {
    const wait = t0 + t * TICK_MS - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    sends.push(
      publisher.publishMany(
        Array.from({ length: perTick }, (_, j) => {
          const i = t * perTick + j;
          return { stream: 'notify.event', record: eventRecord(`bench-lat-${i}`, i, categories) } as const;
        }),
      ),
    );
  }
  await Promise.all(sends);
  const events = ticks * perTick;

  await withAdmin(kafka, async (admin) => {
    const inputTotal = await endTotal(admin, [topicFor(dc, 'notify.event')]);
    await committedAll(kafka, 'router', topicFor(dc, 'notify.event'), inputTotal);
    const ends = await admin.fetchTopicOffsets(web);
    await eventually(
      () => (ends.every((p) => (reached.get(p.partition) ?? 0) >= Number(p.high)) ? true : undefined),
      'the latency reader to reach the end of notify.web',
      60_000,
    );
  });
  await reader.disconnect();
  return {
    events,
    notifications: latencies.length,
    p50_ms: percentile(latencies, 50),
    p99_ms: percentile(latencies, 99),
    max_ms: Math.max(...latencies),
  };
}
