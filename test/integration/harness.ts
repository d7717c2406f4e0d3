/**
 * What integration tests share: clients for the real local stack, and a datacenter name of their
 * own. A test's topics are `<its dc>.<stream>`, so tests never read each other's records, and
 * MirrorMaker (which copies only eqiad.* and codfw.*) leaves them alone.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Kafka, KafkaMessage } from 'kafkajs';
import pino from 'pino';
import { DEFAULT_SCHEMA_REGISTRY_URL, LOCAL_BROKERS } from '../../libs/config/common.ts';
import { createKafka, withAdmin } from '../../libs/kafka/client.ts';
import { DEFAULT_RETRY_DELAYS_MS } from '../../libs/kafka/retry-policy.ts';
import { createTopicsWithLeaders } from '../../libs/kafka/topic-admin.ts';
import {
  applyTopicPlan,
  consumerOwnedTopics,
  desiredTopics,
  ownedTopics,
  readTopics,
  TOPIC_PLAN,
} from '../../libs/kafka/topic-plan.ts';
import { topicFor } from '../../libs/kafka/topics.ts';
import { createPublisher, type Publisher } from '../../libs/publish/publish.ts';

export const BROKERS = { eqiad: [...LOCAL_BROKERS.eqiad], codfw: [...LOCAL_BROKERS.codfw] } as const;
export const REGISTRY_URL = process.env.SCHEMA_REGISTRY_URL ?? DEFAULT_SCHEMA_REGISTRY_URL;

export { withAdmin };

export const quietLog = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

export function uniqueDc(): string {
  return `t${randomBytes(4).toString('hex')}`;
}

export function testKafka(cluster: keyof typeof BROKERS = 'eqiad'): Kafka {
  return createKafka({ clientId: 'tidings-test', brokers: BROKERS[cluster] });
}

/** Partitions of a test's topics unless it asks for others: enough to show per-partition behaviour. */
const TEST_PARTITIONS = 3;

export async function createStreamTopics(
  kafka: Kafka,
  dc: string,
  streams: readonly string[],
  numPartitions = TEST_PARTITIONS,
): Promise<string[]> {
  const topics = streams.map((s) => topicFor(dc, s));
  await withAdmin(kafka, (admin) =>
    createTopicsWithLeaders(
      admin,
      topics.map((topic) => ({ topic, numPartitions })),
    ),
  );
  return topics;
}

/**
 * The topic plan applied to a test datacenter, as `make stack-init` applies it to eqiad: every
 * stream, and the retry, dead-letter and owned topics of `services` (every service by default)
 * for `retryDelaysMs`, the RETRY_DELAYS the test runs them with. Services never create topics, so a
 * test starts them only after this. Topics made before (a stream with a partition count of the
 * test's own) keep their partitions.
 */
export async function applyTestTopicPlan(
  kafka: Kafka,
  dc: string,
  {
    services,
    retryDelaysMs = DEFAULT_RETRY_DELAYS_MS,
    maxPartitions = TEST_PARTITIONS,
  }: { services?: readonly string[]; retryDelaysMs?: readonly number[]; maxPartitions?: number } = {},
): Promise<void> {
  const desired = [
    ...desiredTopics([dc], 1, TOPIC_PLAN, maxPartitions),
    ...ownedTopics([dc], 1, { retryDelaysMs, maxPartitions, services }),
  ];
  await withAdmin(kafka, async (admin) => {
    const existing = await readTopics(
      admin,
      desired.map((d) => d.topic),
    );
    await applyTopicPlan(admin, desired, existing);
  });
}

/**
 * The retry and dead-letter topics of a test's own consumer (a service name the plan does not
 * list), for `retryDelaysMs` (default: the default RETRY_DELAYS), which the runtime requires at
 * start, with its stream's partitions; topics that exist are left alone.
 */
export async function createConsumerTopics(
  kafka: Kafka,
  dc: string,
  consumer: { stream: string; service: string; retryDelaysMs?: readonly number[] },
): Promise<void> {
  const { stream, service, retryDelaysMs = DEFAULT_RETRY_DELAYS_MS } = consumer;
  await withAdmin(kafka, async (admin) => {
    const present = new Set(await admin.listTopics());
    const main = topicFor(dc, stream);
    const numPartitions = present.has(main)
      ? ((await admin.fetchTopicMetadata({ topics: [main] })).topics[0]?.partitions.length ?? TEST_PARTITIONS)
      : TEST_PARTITIONS;
    const missing = consumerOwnedTopics(dc, stream, service, retryDelaysMs).filter(
      (t) => !present.has(t.topic),
    );
    await createTopicsWithLeaders(
      admin,
      missing.map((t) => ({
        topic: t.topic,
        numPartitions,
        configEntries: Object.entries(t.config).map(([name, value]) => ({ name, value })),
      })),
    );
  });
}

/** Deletes every topic of a test datacenter (its streams, retry and dead-letter topics). */
export async function deleteDcTopics(kafka: Kafka, dc: string): Promise<void> {
  await withAdmin(kafka, async (admin) => {
    const mine = (await admin.listTopics()).filter((t) => t.startsWith(`${dc}.`));
    if (mine.length > 0) await admin.deleteTopics({ topics: mine });
  });
}

/** Reads a topic from the beginning until `until` holds or the deadline passes. */
export async function readTopic(
  kafka: Kafka,
  topic: string,
  until: (messages: KafkaMessage[]) => boolean,
  timeoutMs = 30_000,
): Promise<KafkaMessage[]> {
  const consumer = kafka.consumer({
    groupId: `reader-${randomBytes(6).toString('hex')}`,
    maxWaitTimeInMs: 100,
  });
  const messages: KafkaMessage[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(`timed out after ${timeoutMs} ms reading ${topic}; got ${messages.length} records`),
          ),
        timeoutMs,
      );
      void consumer.run({
        eachMessage: async ({ message }) => {
          messages.push(message);
          if (until(messages)) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return messages;
}

export async function eventually<T>(
  probe: () => Promise<T | undefined> | T | undefined,
  what: string,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A port nothing listens on right now, chosen by the kernel: picking one at random collides with
 * the ephemeral ports of the many client connections a test run opens.
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The environment a test or benchmark gives a service process: its own DC prefix on the eqiad cluster. */
export function serviceEnv(dc: string, port: number, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    TIDINGS_DC: dc,
    TIDINGS_DCS: dc,
    KAFKA_BROKERS: BROKERS.eqiad.join(','),
    SCHEMA_REGISTRY_URL: REGISTRY_URL,
    HTTP_PORT: String(port),
    LOG_LEVEL: 'warn',
    ...extra,
  };
}

/** The retry and dead-letter topics of the relay fixture (fixtures/relay-service.ts) named `name`. */
export function relayTopics(kafka: Kafka, dc: string, name = 'relay'): Promise<void> {
  return createConsumerTopics(kafka, dc, { stream: 'notify.event', service: name });
}

/** RETRY_DELAYS for a service process, from the delays a test applied the topic plan for. */
export function retryDelaysVar(delaysMs: readonly number[]): string {
  return delaysMs.map((ms) => `${ms}ms`).join(',');
}

/** The publisher library as an upstream app would use it, writing under a test's own DC prefix. */
export function testPublisher(dc: string, producer: string): Publisher {
  return createPublisher({ brokers: BROKERS.eqiad, dc, registryUrl: REGISTRY_URL, producer });
}

/**
 * How many records `group` has not committed yet, per partition of `topics`. A partition the group
 * never committed to reads -1: none of it is done.
 */
async function partitionLags(kafka: Kafka, group: string, topics: readonly string[]): Promise<number[]> {
  return withAdmin(kafka, async (admin) => {
    const lags: number[] = [];
    for (const topic of topics) {
      const ends = await admin.fetchTopicOffsets(topic);
      const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
      for (const end of ends) {
        const done = Number(committed?.partitions.find((p) => p.partition === end.partition)?.offset ?? -1);
        lags.push(Number(end.high) - Math.max(0, done));
      }
    }
    return lags;
  });
}

/** Records `group` has not committed yet on `topics`, over all their partitions. */
export async function groupLag(kafka: Kafka, group: string, topics: readonly string[]): Promise<number> {
  return (await partitionLags(kafka, group, topics)).reduce((sum, lag) => sum + lag, 0);
}

/** Whether `group` has committed every partition of `topics` up to its log end. */
export async function isCommitted(kafka: Kafka, group: string, topics: readonly string[]): Promise<boolean> {
  return (await partitionLags(kafka, group, topics)).every((lag) => lag <= 0);
}

/**
 * Waits until `group` has committed every partition of `topics` up to its log end. `topics` may be
 * a function, asked again on every try, for lists that grow.
 */
export async function untilCommitted(
  kafka: Kafka,
  group: string,
  topics: readonly string[] | (() => Promise<readonly string[]>),
  what: string,
  timeoutMs = 30_000,
): Promise<void> {
  await eventually(
    async () =>
      (await isCommitted(kafka, group, typeof topics === 'function' ? await topics() : topics))
        ? true
        : undefined,
    what,
    timeoutMs,
  );
}

/** A stream's topic under `dc` and the retry topics `service` has for it. */
export async function streamAndRetryTopics(
  kafka: Kafka,
  dc: string,
  stream: string,
  service: string,
): Promise<string[]> {
  const main = topicFor(dc, stream);
  const retries = `${main}.${service}.retry-`;
  const all = await withAdmin(kafka, (admin) => admin.listTopics());
  return all.filter((t) => t === main || t.startsWith(retries));
}

/** Sum of a metric's samples whose labels include `labels`, from the /metrics of the service on `port`. */
export async function metricValue(
  port: number,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const sample = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!sample || sample[1] !== name) continue;
    const have = new Map([...(sample[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) sum += Number(sample[3]);
  }
  return sum;
}

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the `tidings` CLI against the test schema registry as a child process, without blocking
 * this one, so consumers a test started keep heartbeating meanwhile.
 */
export function runTidings(...args: string[]): Promise<CliRun> {
  return runTidingsWith(process.env, ...args);
}

/** A notification's story as `tidings trace -o json` prints it. */
export interface TracedStory {
  notification_id: string | null;
  recipient_id: string;
  channel: string | null;
  state: { kind: string; how: string; reason?: string | null; summary: string };
  steps: {
    stage: string;
    outcome: string;
    reason: string | null;
    ref: string | null;
    detail: string | null;
    dueAt: string | null;
    dc: string;
  }[];
}

/** `tidings trace` for a test datacenter on the eqiad cluster, e.g. traceStories(dc, '--user', 'ann'). */
export async function traceStories(dc: string, ...selector: string[]): Promise<TracedStory[]> {
  const cluster = ['--brokers', BROKERS.eqiad.join(','), '--dc', dc];
  const run = await runTidings(...cluster, '-o', 'json', 'trace', ...selector);
  // Nothing found is an empty list (and exit 1): the trail may not have caught up yet.
  if (run.status !== 0 && run.stdout.trim() !== '[]') assert.fail(run.stderr);
  return JSON.parse(run.stdout) as TracedStory[];
}

/**
 * `tidings failover --execute` of `groups` from eqiad to codfw, once a checkpoint of each has been
 * mirrored to codfw; the rollback files are not kept.
 */
export async function failoverGroups(groups: readonly string[], margin: string): Promise<void> {
  await readTopic(
    testKafka('codfw'),
    topicFor('eqiad', 'notify.checkpoint'),
    (ms) => groups.every((g) => ms.some((m) => m.key?.toString().startsWith(`${g}|`))),
    60_000,
  );
  const dir = mkdtempSync(join(tmpdir(), 'failover-'));
  try {
    const result = await runTidings(
      'failover',
      '--from',
      'eqiad',
      '--to',
      'codfw',
      '--margin',
      margin,
      ...groups.flatMap((g) => ['--group', g]),
      '--execute',
      '--rollback-file',
      join(dir, 'rollback.json'),
    );
    assert.equal(result.status, 0, result.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** runTidings with an environment of its own (a secured cluster's KAFKA_TLS*, KAFKA_SASL_*). */
export function runTidingsWith(env: NodeJS.ProcessEnv, ...args: string[]): Promise<CliRun> {
  const child = spawn(process.execPath, ['cli/tidings.ts', '--registry', REGISTRY_URL, ...args], {
    cwd: join(import.meta.dirname, '..', '..'),
    env,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  return new Promise((resolve) => child.on('close', (status) => resolve({ status, stdout, stderr })));
}

/**
 * Starts, stops or restarts a part of the local stack (deploy/local/ctl.sh), for tests that inject
 * faults into it. Only ever against a stack of one's own: never the shared one.
 */
export function stackCtl(action: 'start' | 'stop' | 'restart', part: string): Promise<void> {
  const child = spawn(
    'bash',
    [join(import.meta.dirname, '..', '..', 'deploy', 'local', 'ctl.sh'), action, part],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  return new Promise((resolve, reject) =>
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`ctl.sh ${action} ${part}: exit ${code}`)),
    ),
  );
}

export interface ServiceProcess {
  port: number;
  child: ChildProcess;
  /** What it wrote to stdout and stderr, when spawned with `capture`. */
  output(): string;
  /** Its exit code once it exited (null when a signal ended it). */
  exited: Promise<number | null>;
  /** SIGTERM (or `signal`), and SIGKILL if it has not drained in 15 s; resolves once it exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface SpawnOptions {
  /** Keep its output for `output()` instead of passing it through to the test's. */
  capture?: boolean;
  /** Its ops port; a free one by default. */
  port?: number;
  /** The whole environment, for a process that is not one of this stack's test datacenters. */
  env?: NodeJS.ProcessEnv;
}

const running = new Set<ServiceProcess>();

/**
 * Spawns `services/<program>/main.ts` (or `program` itself, a path to a fixture) as a process of
 * datacenter `dc` with `env` on top of serviceEnv, without waiting for it to be ready: for tests
 * that watch it fail to start. stopServices() ends whatever is still running.
 */
export async function spawnService(
  program: string,
  dc: string,
  env: Record<string, string> = {},
  options: SpawnOptions = {},
): Promise<ServiceProcess> {
  const port = options.port ?? (await freePort());
  const script = program.includes('/')
    ? program
    : join(import.meta.dirname, '..', '..', 'services', program, 'main.ts');
  const child = spawn(process.execPath, [script], {
    env: options.env ?? serviceEnv(dc, port, env),
    stdio: ['ignore', options.capture ? 'pipe' : 'inherit', options.capture ? 'pipe' : 'inherit'],
  });
  let output = '';
  const keep = (chunk: Buffer) => {
    output += chunk;
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    running.delete(service);
  };
  const service: ServiceProcess = { port, child, output: () => output, exited, stop };
  running.add(service);
  void exited.then(() => running.delete(service));
  return service;
}

/** Ends every service process this test file started that is still running. */
export async function stopServices(signal?: NodeJS.Signals): Promise<void> {
  await Promise.all([...running].map((s) => s.stop(signal)));
}

/** Resolves once its /readyz says ready; rejects (with its output, if captured) if it exits first. */
export async function untilReady(service: ServiceProcess, name: string, timeoutMs = 60_000): Promise<void> {
  await eventually(
    async () => {
      const { exitCode } = service.child;
      if (exitCode !== null)
        throw new Error(`${name} exited with ${exitCode} before it was ready\n${service.output()}`);
      const res = await fetch(`http://127.0.0.1:${service.port}/readyz`).catch(() => undefined);
      return res?.status === 200 ? true : undefined;
    },
    `${name} to be ready`,
    timeoutMs,
  );
}

/**
 * Starts `services/<program>/main.ts` (or a fixture at path `program`) as a process of its own
 * datacenter `dc` on a free ops port, with `env` on top of serviceEnv, and resolves once its
 * /readyz says ready; a process that does not get there is killed.
 */
export async function startService(
  program: string,
  dc: string,
  env: Record<string, string> = {},
  { readyTimeoutMs = 60_000, ...options }: SpawnOptions & { readyTimeoutMs?: number } = {},
): Promise<ServiceProcess> {
  const service = await spawnService(program, dc, env, options);
  try {
    await untilReady(service, program, readyTimeoutMs);
  } catch (error) {
    await service.stop('SIGKILL');
    throw error;
  }
  return service;
}
