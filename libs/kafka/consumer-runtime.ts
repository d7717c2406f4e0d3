/**
 * The consumer runtime every Tidings service runs its handlers in.
 *
 * Guarantees, in the order a record meets them:
 * - at-least-once: an offset is committed only after the record's handler finished and every
 *   record it emitted (or its retry / dead letter) is acknowledged by Kafka with acks=all;
 * - bounded concurrency, serial per key, committing the lowest unfinished offset of a partition;
 * - undecodable records, unknown schema ids and rejected records go to the DLQ with headers naming
 *   their source; transient failures go through retry topics with growing delays, whose
 *   partitions pause until their head record is due; the main topics never wait for retries;
 * - a DLQ-rate breaker pauses consumption when dead letters pile up;
 * - checkpoints (event time per group and partition) go to notify.checkpoint for failover;
 * - stop() finishes in-flight work, commits and leaves the group.
 * A stateful handler gets two hooks: afterDurable (state that may say "done" only once the batch's
 * outputs are acknowledged, written before the commit) and handleTombstone (compacted streams).
 */
import { randomUUID } from 'node:crypto';
import type { Admin, Consumer, EachBatchPayload, IHeaders, Kafka, KafkaMessage, Producer } from 'kafkajs';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { StreamName } from '../schemas/catalog.ts';
import type { Meta, StreamInputs, StreamRecords } from '../schemas/types.generated.ts';
import { type Checkpointer, createCheckpointer } from './checkpointer.ts';
import { createProducer } from './client.ts';
import { createDlqBreaker, type DlqBreakerOptions } from './dlq-breaker.ts';
import { createKeyedLimiter } from './keyed-limiter.ts';
import { createOffsetTracker, type OffsetTracker } from './offset-tracker.ts';
import { createOutbox, type OutboundRecord } from './outbox.ts';
import { decodeFailureKind, type RecordCodec } from './record-codec.ts';
import { errorHeaderText, HEADER, headerInt, headerString, passThroughHeaders } from './record-headers.ts';
import { createRetryPolicy, type FailureRoute } from './retry-policy.ts';
import { createRuntimeMetrics } from './runtime-metrics.ts';
import { createTopicsWithLeaders } from './topic-admin.ts';
import { parseTopic, topicFor, topicsAcrossDcs } from './topics.ts';

export interface ConsumedRecord<T> {
  topic: string;
  partition: number;
  offset: string;
  key: string | null;
  /** Kafka timestamp (ms). */
  timestamp: number;
  headers: IHeaders;
  /** The stream and the datacenter that produced it, from the topic name. */
  stream: StreamName;
  originDc: string;
  value: T;
  /** How many times this record failed before (0 on the main topic). */
  attempt: number;
}

export interface EmitOptions {
  key?: string | null;
  headers?: IHeaders;
  /** A topic of this service's own carrying the stream's records (e.g. a hold topic); default `<dc>.<stream>`. */
  topic?: string;
}

export interface HandlerContext<B> {
  /** What prepareBatch returned for the fetched batch this record belongs to. */
  batch: B;
  /** Queues a record for this service's DC; it is sent and acknowledged before this record's offset commits. */
  emit<O extends StreamName>(stream: O, value: StreamInputs[O], options?: EmitOptions): void;
  /** The meta envelope for a record derived from this one: new id, same event time and request id. */
  derivedMeta(stream: StreamName): Meta;
}

export interface RecordHandler<T, B = undefined> {
  /** Runs once per fetched batch before its records are handled, e.g. one query for all recipients. */
  prepareBatch?(records: readonly ConsumedRecord<T>[]): Promise<B>;
  handle(record: ConsumedRecord<T>, context: HandlerContext<B>): Promise<void> | void;
  /**
   * For compacted streams: receives tombstones (null values), which are dead-lettered without it.
   * Tombstones take no part in prepareBatch or afterDurable.
   */
  handleTombstone?(record: ConsumedRecord<null>, context: HandlerContext<B>): Promise<void> | void;
  /**
   * Runs once per fetched batch after the records handled successfully (given here) have every
   * emitted record acknowledged by Kafka, and before their offsets commit: the place for state that
   * must only say "done" once the outputs are durable (e.g. dedup ids). With this hook offsets commit
   * once per batch, after it; if it throws, the batch is fetched and handled again.
   */
  afterDurable?(records: readonly ConsumedRecord<T>[], batch: B): Promise<void>;
}

/** Throw from a handler for a record that will never succeed (semantically invalid): it is dead-lettered at once. */
export class RejectedRecordError extends Error {
  readonly reason: string;
  constructor(reason: string, message?: string) {
    super(message ?? reason);
    this.name = 'RejectedRecordError';
    this.reason = reason;
  }
}

/**
 * Throw from a handler for a record that cannot be handled now through no fault of its own (e.g. a
 * send budget spent, or a misconfigured downstream): it is neither retried nor dead-lettered but
 * left unfinished, so it is fetched again. Pause the runtime first, or it comes straight back.
 */
export class DeferredRecordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DeferredRecordError';
  }
}

export interface ConsumerRuntimeOptions<S extends StreamName, B> {
  kafka: Kafka;
  codec: RecordCodec;
  log: Logger;
  registry: Registry;
  /** Service name: names retry/DLQ topics and the `producer` of emitted records. */
  service: string;
  /** Consumer group; defaults to the service name. */
  group?: string;
  dc: string;
  dcs: readonly string[];
  stream: S;
  handler: RecordHandler<StreamRecords[S], B>;
  /** A producer to share with the service; one is created (and closed) otherwise. */
  producer?: Producer;
  concurrency?: number;
  /** One retry topic per delay; an empty list dead-letters a failure at once. */
  retryDelaysMs?: readonly number[];
  breaker?: DlqBreakerOptions;
  checkpointIntervalMs?: number;
  commitIntervalMs?: number;
  partitionsConsumedConcurrently?: number;
  /** How long the group waits for a silent member (e.g. a killed process) before reassigning its partitions. */
  sessionTimeoutMs?: number;
  /** Where a group without committed offsets starts. Default: the beginning, so nothing is skipped. */
  fromBeginning?: boolean;
  now?: () => number;
}

export interface ConsumerRuntime {
  start(): Promise<void>;
  /** Stops fetching, finishes in-flight records, commits, publishes checkpoints, leaves the group. */
  stop(): Promise<void>;
  /** Backpressure: pause all fetching until every reason given has been resumed. */
  pause(reason: string): void;
  resume(reason: string): void;
  readiness(): { ok: boolean; detail: string };
  /** The topics this runtime subscribed to. */
  topics(): string[];
}

export const DEFAULT_RETRY_DELAYS_MS = [1_000, 10_000, 60_000] as const;

type Outcome = 'ok' | 'retried' | 'dead_lettered';

/**
 * A record whose handling is decided, and the promise that its consequences are in Kafka. A record
 * frees its concurrency slot as soon as it is decided; waiting for acks=all happens outside the
 * limiter, or the round trip would cap throughput at concurrency / latency.
 */
interface Decided {
  outcome: Outcome;
  durable: Promise<void>;
}

interface PositionData {
  timestamp: number;
  eventTime: number | null;
}

export function createConsumerRuntime<S extends StreamName, B = undefined>(
  opts: ConsumerRuntimeOptions<S, B>,
): ConsumerRuntime {
  type T = StreamRecords[S];
  const {
    kafka,
    codec,
    registry,
    service,
    dc,
    dcs,
    stream,
    handler,
    concurrency = 32,
    retryDelaysMs = DEFAULT_RETRY_DELAYS_MS,
    breaker: breakerOptions = { threshold: 100, windowMs: 60_000, cooldownMs: 300_000 },
    checkpointIntervalMs = 5_000,
    commitIntervalMs = 1_000,
    partitionsConsumedConcurrently = 3,
    sessionTimeoutMs = 30_000,
    fromBeginning = true,
    now = Date.now,
  } = opts;
  const group = opts.group ?? service;
  const log = opts.log.child({ group, stream });
  const metrics = createRuntimeMetrics(registry);
  const labels = { group };

  const policy = createRetryPolicy({ dc, stream, service, delaysMs: retryDelaysMs });
  const retryTopicSet = new Set(policy.retryTopicsAcrossDcs(dcs));
  const breaker = createDlqBreaker(breakerOptions);
  const limiter = createKeyedLimiter(concurrency);
  const ownsProducer = !opts.producer;
  const producer = opts.producer ?? createProducer(kafka);
  const outbox = createOutbox(producer);
  const checkpointer: Checkpointer = createCheckpointer({ group, dc, service, codec, outbox, now });
  const consumer: Consumer = kafka.consumer({
    groupId: group,
    allowAutoTopicCreation: false,
    maxWaitTimeInMs: 250,
    sessionTimeout: sessionTimeoutMs,
    heartbeatInterval: Math.min(3_000, Math.floor(sessionTimeoutMs / 3)),
  });

  let subscribed: string[] = [];
  let joined = false;
  let crashed: string | null = null;
  let stopping = false;
  let checkpointTimer: NodeJS.Timeout | null = null;
  const pauseReasons = new Set<string>();
  // Retry partitions waiting for their head record, and partitions parked while the breaker is open.
  const partitionTimers = new Map<string, NodeJS.Timeout>();

  consumer.on(consumer.events.GROUP_JOIN, () => {
    joined = true;
    crashed = null;
  });
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    joined = false;
    crashed = errorHeaderText(payload.error);
    log.error({ err: payload.error, restart: payload.restart }, 'consumer crashed');
  });

  const isHalted = () => stopping || pauseReasons.size > 0 || breaker.isOpen(now());

  function applyGlobalPause() {
    const targets = subscribed.map((topic) => ({ topic }));
    if (pauseReasons.size > 0 || breaker.isOpen(now())) {
      consumer.pause(targets);
      metrics.paused.set(labels, 1);
    } else {
      consumer.resume(targets);
      metrics.paused.set(labels, 0);
    }
  }

  function pausePartitionUntil(payload: EachBatchPayload, until: number) {
    const { topic, partition } = payload.batch;
    const id = `${topic}|${partition}`;
    const resume = payload.pause();
    clearTimeout(partitionTimers.get(id));
    const timer = setTimeout(
      () => {
        partitionTimers.delete(id);
        if (!stopping) resume();
      },
      Math.max(0, until - now()),
    );
    timer.unref();
    partitionTimers.set(id, timer);
  }

  function onDeadLetter() {
    metrics.breakerRecent.set(labels, breaker.recentCount(now()) + 1);
    if (!breaker.record(now())) return;
    const reopensAt = breaker.reopensAt() ?? now();
    metrics.breakerOpen.set(labels, 1);
    log.fatal(
      {
        threshold: breakerOptions.threshold,
        window_ms: breakerOptions.windowMs,
        dlq_topic: policy.deadLetterTopic,
        paused_until: new Date(reopensAt).toISOString(),
      },
      `DLQ breaker OPEN: ${breakerOptions.threshold} records dead-lettered within ${breakerOptions.windowMs} ms; ` +
        `consumption is paused until ${new Date(reopensAt).toISOString()}. A bad deploy or a broken producer is ` +
        `likely: inspect ${policy.deadLetterTopic} (tidings dlq show), fix the cause, then replay the DLQ.`,
    );
    applyGlobalPause();
    const timer = setTimeout(
      () => {
        if (stopping) return;
        metrics.breakerOpen.set(labels, 0);
        log.warn('DLQ breaker half-open: resuming consumption');
        applyGlobalPause();
      },
      Math.max(0, reopensAt - now()) + 10,
    );
    timer.unref();
  }

  function failureRecord(
    message: KafkaMessage,
    topic: string,
    partition: number,
    route: FailureRoute,
    kind: string,
    error: unknown,
  ): OutboundRecord {
    const headers: IHeaders = {
      ...passThroughHeaders(message.headers),
      [HEADER.sourceTopic]: headerString(message.headers, HEADER.sourceTopic) ?? topic,
      [HEADER.sourcePartition]: headerString(message.headers, HEADER.sourcePartition) ?? String(partition),
      [HEADER.sourceOffset]: headerString(message.headers, HEADER.sourceOffset) ?? message.offset,
      [HEADER.sourceTimestamp]: headerString(message.headers, HEADER.sourceTimestamp) ?? message.timestamp,
      [HEADER.attempt]: String(route.attempt),
      [HEADER.errorKind]: kind,
      [HEADER.errorMessage]: errorHeaderText(error),
      [HEADER.failedAt]: new Date(now()).toISOString(),
      [HEADER.service]: service,
      [HEADER.group]: group,
    };
    if (route.kind === 'retry') headers[HEADER.retryDue] = String(route.dueAt);
    return { topic: route.topic, message: { key: message.key, value: message.value, headers } };
  }

  /** Routes a failed record to its next retry topic or the DLQ, durably. */
  function fail(
    message: KafkaMessage,
    topic: string,
    partition: number,
    attempt: number,
    kind: string,
    error: unknown,
    permanent: boolean,
  ): Decided {
    const route: FailureRoute = permanent
      ? { kind: 'dead-letter', topic: policy.deadLetterTopic, attempt: attempt + 1 }
      : policy.route(attempt + 1, now());
    const durable = outbox.send([failureRecord(message, topic, partition, route, kind, error)]);
    if (route.kind === 'retry') {
      metrics.retries.inc({ group, delay: String(route.delayMs) });
      log.warn(
        {
          err: error,
          topic,
          partition,
          offset: message.offset,
          attempt: route.attempt,
          retry_topic: route.topic,
        },
        'record failed; retrying later',
      );
      return { outcome: 'retried', durable };
    }
    metrics.deadLetters.inc({ group, reason: kind });
    log.error(
      { err: error, topic, partition, offset: message.offset, reason: kind, dlq: route.topic },
      'record dead-lettered',
    );
    onDeadLetter();
    return { outcome: 'dead_lettered', durable };
  }

  async function handleOne(
    record: ConsumedRecord<T | null>,
    message: KafkaMessage,
    batchContext: B,
    run: (context: HandlerContext<B>) => Promise<void> | void,
  ): Promise<Decided | null> {
    const outputs: Promise<OutboundRecord>[] = [];
    const context: HandlerContext<B> = {
      batch: batchContext,
      emit(outStream, value, options = {}) {
        const outTopic = options.topic ?? topicFor(dc, outStream);
        outputs.push(
          codec.encode(outStream, value).then((bytes) => ({
            topic: outTopic,
            message: { key: options.key ?? null, value: bytes, headers: options.headers ?? {} },
          })),
        );
      },
      derivedMeta(outStream) {
        const parent = (record.value as { meta?: Partial<Meta> } | null)?.meta;
        return {
          id: randomUUID(),
          dt: parent?.dt ?? record.timestamp,
          stream: outStream,
          dc,
          producer: service,
          request_id: parent?.request_id ?? null,
        };
      },
    };
    let ready: OutboundRecord[];
    const timer = metrics.handleSeconds.startTimer(labels);
    try {
      await run(context);
      ready = await Promise.all(outputs);
    } catch (error) {
      if (error instanceof DeferredRecordError) return null;
      const rejected = error instanceof RejectedRecordError;
      return fail(
        message,
        record.topic,
        record.partition,
        record.attempt,
        rejected ? `rejected:${error.reason}` : 'handler',
        error,
        rejected,
      );
    } finally {
      timer();
    }
    // A failed send is not the record's fault: it propagates and the batch is fetched again.
    return { outcome: 'ok', durable: outbox.send(ready) };
  }

  async function eachBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    const { topic, partition } = batch;
    const isRetryTopic = retryTopicSet.has(topic);
    const sourceStream = stream;
    const originDc = parseTopic(topic).dc;
    const tracker: OffsetTracker<PositionData> = createOffsetTracker();
    let lastCommit = now();
    let committed: bigint | null = null;

    // Commits are chained so a lower offset can never land after a higher one.
    let commitChain: Promise<void> = Promise.resolve();
    const commit = () => {
      commitChain = commitChain.then(async () => {
        const position = tracker.advance();
        if (!position) return;
        committed = position.offset;
        lastCommit = now();
        await payload.commitOffsetsIfNecessary({
          topics: [{ topic, partitions: [{ partition, offset: position.offset.toString() }] }],
        });
        checkpointer.update(topic, partition, {
          offset: position.offset,
          recordTime: position.data.timestamp,
          eventTime: position.data.eventTime,
        });
        metrics.lastProcessed.set(
          { group, topic, partition: String(partition) },
          position.data.timestamp / 1000,
        );
      });
      return commitChain;
    };

    // Which records to take now: all of them, unless a retry record is not yet due or the
    // consumer is halting; the rest are fetched again later.
    let take = batch.messages.length;
    let pauseUntil: number | null = null;
    if (isRetryTopic) {
      for (let i = 0; i < batch.messages.length; i++) {
        const due = headerInt(batch.messages[i]!.headers, HEADER.retryDue) ?? 0;
        if (due > now()) {
          take = i;
          pauseUntil = due;
          break;
        }
      }
    }
    const messages = batch.messages.slice(0, take);

    const decoded: {
      message: KafkaMessage;
      record?: ConsumedRecord<T>;
      tombstone?: ConsumedRecord<null>;
      error?: unknown;
    }[] = [];
    const consumedRecord = <V>(message: KafkaMessage, value: V, attempt: number): ConsumedRecord<V> => ({
      topic,
      partition,
      offset: message.offset,
      key: message.key ? message.key.toString('utf8') : null,
      timestamp: Number(message.timestamp),
      headers: message.headers ?? {},
      stream: sourceStream,
      originDc,
      value,
      attempt,
    });
    for (const message of messages) {
      const attempt = isRetryTopic ? (headerInt(message.headers, HEADER.attempt) ?? 1) : 0;
      if (!message.value && handler.handleTombstone) {
        decoded.push({ message, tombstone: consumedRecord(message, null, attempt) });
        continue;
      }
      if (!message.value) {
        decoded.push({
          message,
          error: new Error('record has no value (tombstone) on a stream that has none'),
        });
        continue;
      }
      try {
        const value = (await codec.decode(sourceStream, message.value)) as T;
        decoded.push({ message, record: consumedRecord(message, value, attempt) });
      } catch (error) {
        // A registry that is down is not the record's fault: fail the batch, it is fetched again.
        if (decodeFailureKind(error) === null) throw error;
        decoded.push({ message, error });
      }
    }

    const good = decoded.flatMap((d) => (d.record ? [d.record] : []));
    let batchContext: B | undefined;
    let prepareError: unknown;
    if (handler.prepareBatch && good.length > 0) {
      try {
        batchContext = await handler.prepareBatch(good);
      } catch (error) {
        prepareError = error;
      }
    }

    // Every record is queued at once; the limiter bounds how many run. A record whose turn comes
    // after a stop, a rebalance or a breaker trip is left unfinished, which holds the commit below it.
    let stoppedEarly = false;
    const succeeded: ConsumedRecord<T>[] = [];
    const tasks: Promise<void>[] = [];
    const decisions: Promise<unknown>[] = [];
    for (const item of decoded) {
      const { message } = item;
      const offset = BigInt(message.offset);
      const eventTime = (item.record?.value as { meta?: { dt?: number } } | undefined)?.meta?.dt ?? null;
      tracker.begin(offset, { timestamp: Number(message.timestamp), eventTime });
      const key = message.key ? message.key.toString('utf8') : null;
      const decide = async (): Promise<Decided | null> => {
        if (isHalted() || !payload.isRunning() || payload.isStale()) {
          stoppedEarly = true;
          return null;
        }
        const { record, tombstone } = item;
        if (tombstone && handler.handleTombstone) {
          const handleTombstone = handler.handleTombstone.bind(handler);
          const decided = await handleOne(tombstone, message, batchContext as B, (ctx) =>
            handleTombstone(tombstone, ctx),
          );
          if (!decided) stoppedEarly = true;
          return decided;
        }
        if (record && prepareError === undefined) {
          const decided = await handleOne(record, message, batchContext as B, (ctx) =>
            handler.handle(record, ctx),
          );
          if (!decided) stoppedEarly = true;
          return decided;
        }
        if (record) {
          return fail(message, topic, partition, record.attempt, 'handler', prepareError, false);
        }
        return fail(
          message,
          topic,
          partition,
          0,
          decodeFailureKind(item.error) ?? 'malformed',
          item.error,
          true,
        );
      };
      const settle = async (decided: Decided | null) => {
        if (!decided) return;
        await decided.durable;
        if (decided.outcome === 'ok' && item.record) succeeded.push(item.record);
        metrics.records.inc({ group, outcome: decided.outcome });
        tracker.finish(offset);
        if (!handler.afterDurable && now() - lastCommit >= commitIntervalMs) {
          await commit();
          await payload.heartbeat();
        }
      };
      const decision = limiter.run(key, decide);
      decisions.push(decision);
      tasks.push(decision.then(settle));
    }
    metrics.inFlight.set(labels, limiter.active());
    // Once every record of the batch is decided nothing more will join from it: send now rather
    // than after the outbox's linger time.
    await Promise.allSettled(decisions);
    void outbox.flush().catch(() => undefined);
    const results = await Promise.allSettled(tasks);
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (handler.afterDurable) {
      // A failed send leaves its record unfinished, so the commit below stops short of it; the hook
      // still runs for the records that are durable, or they would be handled (and emitted) again.
      if (succeeded.length > 0) await handler.afterDurable(succeeded, batchContext as B);
    }
    await commit();
    if (failure) throw failure.reason;

    // kafkajs fetches from the resolved offset: resolve exactly what was committed so skipped
    // records are fetched again once the partition moves.
    const resolveUpTo = committed !== null ? (committed as bigint) - 1n : null;
    if (resolveUpTo !== null) payload.resolveOffset(resolveUpTo.toString());

    if (breaker.isOpen(now())) pausePartitionUntil(payload, breaker.reopensAt() ?? now());
    else if (pauseUntil !== null && !stoppedEarly) pausePartitionUntil(payload, pauseUntil);
    await payload.heartbeat();
  }

  async function existingTopics(admin: Admin): Promise<Set<string>> {
    return new Set(await admin.listTopics());
  }

  async function ensureOwnTopics(admin: Admin, present: Set<string>) {
    const local = topicFor(dc, stream);
    if (!present.has(local)) {
      throw new Error(
        `topic ${local} does not exist on this cluster; create it with: tidings topics apply --dc ${dc}`,
      );
    }
    const metadata = await admin.fetchTopicMetadata({ topics: [local] });
    const partitions = metadata.topics[0]?.partitions.length ?? 1;
    const wanted = [...policy.retryTopics, policy.deadLetterTopic].filter((t) => !present.has(t));
    if (wanted.length === 0) return;
    await createTopicsWithLeaders(
      admin,
      wanted.map((t) => ({
        topic: t,
        numPartitions: partitions,
        configEntries: [{ name: 'retention.ms', value: String((t.endsWith('.dlq') ? 30 : 7) * 86_400_000) }],
      })),
    );
    for (const t of wanted) present.add(t);
    log.info({ topics: wanted }, 'created retry and dead-letter topics');
  }

  return {
    async start() {
      const admin = kafka.admin();
      await admin.connect();
      try {
        const present = await existingTopics(admin);
        await ensureOwnTopics(admin, present);
        const wanted = [...topicsAcrossDcs(dcs, stream), ...policy.retryTopicsAcrossDcs(dcs)];
        subscribed = wanted.filter((t) => present.has(t));
        const missing = wanted.filter((t) => !present.has(t));
        if (missing.length > 0) log.warn({ missing }, 'not subscribing to topics that do not exist (yet)');
      } finally {
        await admin.disconnect();
      }
      if (ownsProducer) await producer.connect();
      await consumer.connect();
      await consumer.subscribe({ topics: subscribed, fromBeginning });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently,
        eachBatch,
      });
      checkpointTimer = setInterval(() => {
        checkpointer.publish().catch((err) => log.warn({ err }, 'checkpoint publish failed; will retry'));
      }, checkpointIntervalMs);
      checkpointTimer.unref();
      log.info({ topics: subscribed, concurrency, retry_delays_ms: retryDelaysMs }, 'consumer started');
    },
    async stop() {
      if (stopping) return;
      stopping = true;
      if (checkpointTimer) clearInterval(checkpointTimer);
      for (const timer of partitionTimers.values()) clearTimeout(timer);
      await consumer.stop();
      await consumer.disconnect();
      await checkpointer.publish().catch((err) => log.warn({ err }, 'final checkpoint publish failed'));
      await outbox.flush();
      if (ownsProducer) await producer.disconnect();
      joined = false;
      log.info('consumer stopped');
    },
    pause(reason) {
      pauseReasons.add(reason);
      applyGlobalPause();
    },
    resume(reason) {
      pauseReasons.delete(reason);
      applyGlobalPause();
    },
    readiness() {
      if (crashed) return { ok: false, detail: `consumer crashed: ${crashed}` };
      if (breaker.isOpen(now())) return { ok: false, detail: 'DLQ breaker open' };
      if (!joined) return { ok: false, detail: 'not (yet) a member of the consumer group' };
      return { ok: true, detail: `consuming ${subscribed.length} topics` };
    },
    topics() {
      return [...subscribed];
    },
  };
}
