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
 * - one pause model (pause-model.ts) composes every reason to stop fetching (a handler's hold,
 *   backpressure, the DLQ breaker, retry due times) and re-applies it after every group join and
 *   consumer restart; nothing fetched is prepared or handled while it holds;
 * - heartbeats continue through long batches; a rebalance stops a batch from taking more records,
 *   and what is in flight finishes and commits; a failed batch resumes after its last commit;
 * - checkpoints (event time per group and partition) go to notify.checkpoint on their own path, so
 *   a failing checkpoint never rejects or delays a data record; a partition at its log end is
 *   checkpointed as caught up every caught-up interval (caught-up-probe.ts), so an idle one does
 *   not hold a failover back to its last record;
 * - every topic the runtime writes (its stream's local topic, the checkpoint topic, its retry topics
 *   and DLQ) must exist at start, or start() names each missing one; `tidings topics apply` creates
 *   them, the runtime never does;
 *   topics of the stream that appear later are subscribed within the refresh interval;
 * - stop() finishes in-flight work, commits and leaves the group.
 * A handler gets capabilities on its context, as KafkaJS's eachBatch payload hands out
 * resolveOffset and heartbeat: emit, hold (stop the whole consumer for a reason) and, by throwing
 * RetryLater, a minimum delay before a record's retry. A stateful handler gets two hooks:
 * afterDurable (state that may say "done" only once the batch's outputs are acknowledged, written
 * before the commit) and handleTombstone (compacted streams).
 */
import { randomUUID } from 'node:crypto';
import type { Consumer, EachBatchPayload, IHeaders, Kafka, KafkaMessage, Producer } from 'kafkajs';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { StreamName } from '../schemas/catalog.ts';
import type { Meta, StreamInputs, StreamRecords } from '../schemas/types.generated.ts';
import { createCaughtUpProbe } from './caught-up-probe.ts';
import { type Checkpointer, createCheckpointer } from './checkpointer.ts';
import { createProducer, withAdmin } from './client.ts';
import { createDlqBreaker, type DlqBreakerOptions } from './dlq-breaker.ts';
import { createKeyedLimiter, type TaskRunner } from './keyed-limiter.ts';
import { createOffsetTracker, type Position } from './offset-tracker.ts';
import { createOutbox, type OutboundRecord } from './outbox.ts';
import { createPauseModel, type HoldUntil } from './pause-model.ts';
import { decodeFailureKind, type RecordCodec } from './record-codec.ts';
import { errorHeaderText, HEADER, headerInt, headerString, passThroughHeaders } from './record-headers.ts';
import { createRetryPolicy, DEFAULT_RETRY_DELAYS_MS, type FailureRoute } from './retry-policy.ts';
import { createRuntimeMetrics } from './runtime-metrics.ts';
import { requireTopics } from './topic-check.ts';
import { consumerWrites } from './topic-plan.ts';
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
  /**
   * Sent even if the handler then throws: with the record's retry or dead letter, in the same
   * request, or, for a DeferredRecordError, as the record is left for later. For what a stage says
   * about the failure itself (the delivery trail's "deferred"); the other outputs of a failed
   * record are dropped.
   */
  evenIfFailed?: boolean;
}

export interface HandlerContext<B> {
  /** What prepareBatch returned for the fetched batch this record belongs to. */
  batch: B;
  /** Queues a record for this service's DC; it is sent and acknowledged before this record's offset commits. */
  emit<O extends StreamName>(stream: O, value: StreamInputs[O], options?: EmitOptions): void;
  /**
   * The meta envelope for a record derived from this one: same event time and request id, and a
   * new random id unless `id` gives one derived from what the record says.
   */
  derivedMeta(stream: StreamName, id?: string): Meta;
  /**
   * Stops this consumer fetching, for a reason that concerns every record rather than this one (a
   * send budget spent, a provider's Retry-After, a downstream that is down): until a time, or until
   * `probe` says true (run every probe interval). A later time for a held reason extends it. Throw
   * DeferredRecordError afterwards to leave this record for after the hold, or RetryLater to retry it.
   */
  hold(reason: string, how: HoldUntil): void;
}

export interface RecordHandler<T, B = undefined> {
  /**
   * Runs once per fetched batch before its records are handled, e.g. one query for all recipients.
   * Never while the consumer is held: a held batch is left for after the hold. With the runtime's
   * prepareSlice option it runs once per slice of the batch, the next slice's call starting while
   * the current slice's records are handled and sent: it gets the context the previous slice's call
   * returned (whose records may still be running) and returns the one for its own slice; afterDurable
   * gets the last slice's. A handler whose context accumulates batch state (dedup, counters)
   * therefore extends `previous` rather than starting over.
   */
  prepareBatch?(records: readonly ConsumedRecord<T>[], previous?: B): Promise<B>;
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
   * once per batch, after it; if it throws, the batch is fetched again after its last commit.
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
 * left unfinished, so it is fetched again. Hold the consumer first (context.hold), or it comes
 * straight back.
 */
export class DeferredRecordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DeferredRecordError';
  }
}

/**
 * Throw from a handler for a transient failure whose cause says when to try again (a provider's
 * Retry-After): the record goes to its next retry topic due no earlier than `afterMs` from now (the
 * later of that and the policy's delay). The due time travels in the retry record's headers, so it
 * holds across restarts.
 */
export class RetryLater extends Error {
  readonly afterMs: number;
  constructor(afterMs: number, message?: string) {
    super(message ?? `retry no earlier than in ${afterMs} ms`);
    this.name = 'RetryLater';
    this.afterMs = afterMs;
  }
}

/** The runtime's defaults, in one place; services override them through libs/service/consumer-config.ts. */
export const RUNTIME_DEFAULTS = {
  concurrency: 32,
  retryDelaysMs: DEFAULT_RETRY_DELAYS_MS,
  breaker: { threshold: 100, windowMs: 60_000, cooldownMs: 300_000 } as DlqBreakerOptions,
  checkpointIntervalMs: 5_000,
  /** How often partitions at their log end are checkpointed as caught up (one record each). */
  caughtUpIntervalMs: 60_000,
  commitIntervalMs: 1_000,
  partitionsConsumedConcurrently: 3,
  sessionTimeoutMs: 30_000,
  /** How often a hold's probe runs while it holds. */
  probeIntervalMs: 30_000,
  /** How often the cluster is asked for topics of the stream that appeared since the start. */
  topicRefreshIntervalMs: 60_000,
  fromBeginning: true,
};

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
  caughtUpIntervalMs?: number;
  commitIntervalMs?: number;
  partitionsConsumedConcurrently?: number;
  /**
   * Records per prepareBatch call (default: the whole fetched batch). The first slice's look-up is
   * waited for; each later one overlaps the handling and sends of the slice before it, so a handler
   * whose prepareBatch waits on a database is not idle during it. Offsets, order per key and
   * afterDurable stay per fetched batch.
   */
  prepareSlice?: number;
  /** How long the group waits for a silent member (e.g. a killed process) before reassigning its partitions. */
  sessionTimeoutMs?: number;
  probeIntervalMs?: number;
  topicRefreshIntervalMs?: number;
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

const OUTCOMES = ['ok', 'retried', 'dead_lettered'] as const;
type Outcome = (typeof OUTCOMES)[number];

/**
 * A record whose handling is decided, and the promise that its consequences are in Kafka. A record
 * frees its concurrency slot as soon as it is decided; waiting for acks=all happens outside the
 * limiter, or the round trip would cap throughput at concurrency / latency.
 */
interface Decided {
  outcome: Outcome;
  durable: Promise<void>;
}

/**
 * One fetched record on its way through its batch: what it decoded to (a value, a tombstone, or
 * why it could not be read), its place in the commit order, and how it was decided. The one object
 * a record costs the runtime: the limiter, the offset tracker and the outbox's wait all take it.
 */
interface RecordTurn<T, B> {
  message: KafkaMessage;
  record: ConsumedRecord<T> | null;
  tombstone: ConsumedRecord<null> | null;
  /** Why it could not be read; undefined when it was. */
  error: unknown;
  key: string | null;
  /** The Kafka timestamp and the event time (meta.dt) its commit reports to the checkpoints. */
  timestamp: number;
  eventTime: number | null;
  /** Set as it is queued: its slice's prepareBatch and its place among the partition's offsets. */
  prepared: Prepared<B> | null;
  position: Position<RecordTurn<T, B>> | null;
  outcome: Outcome;
}

/** A slice's prepareBatch: `left` when a stop or a hold came first, so its records are left unfinished. */
type Prepared<B> = { context?: B; error?: unknown; left?: true };

/** A slice decoded and prepared, or `broken` by a failure of the codec that is no record's fault. */
interface ReadySlice<T, B> {
  turns: RecordTurn<T, B>[];
  prepared: Prepared<B>;
  broken?: unknown;
}

/** Records per slice for a handler without prepareBatch; see slicesOf. */
const DECODE_SLICE = 256;

interface Failure {
  message: KafkaMessage;
  topic: string;
  partition: number;
  /** Failures before this one (0 on the main topic). */
  attempt: number;
  kind: string;
  error: unknown;
  /** Straight to the DLQ, no retries. */
  permanent: boolean;
}

const BREAKER_REASON = 'dlq-breaker';

const isRebalancing = (error: unknown): boolean => {
  const type = (error as { type?: string } | null)?.type;
  return type === 'REBALANCE_IN_PROGRESS' || type === 'ILLEGAL_GENERATION' || type === 'UNKNOWN_MEMBER_ID';
};

export function createConsumerRuntime<S extends StreamName, B = undefined>(
  opts: ConsumerRuntimeOptions<S, B>,
): ConsumerRuntime {
  type T = StreamRecords[S];
  const { kafka, codec, registry, service, dc, dcs, stream, handler } = opts;
  const {
    concurrency,
    retryDelaysMs,
    breaker: breakerOptions,
    checkpointIntervalMs,
    caughtUpIntervalMs,
    commitIntervalMs,
    partitionsConsumedConcurrently,
    prepareSlice,
    sessionTimeoutMs,
    probeIntervalMs,
    topicRefreshIntervalMs,
    fromBeginning,
  } = { ...RUNTIME_DEFAULTS, ...definedOnly(opts) };
  const now = opts.now ?? Date.now;
  const group = opts.group ?? service;
  const log = opts.log.child({ group, stream });
  const metrics = createRuntimeMetrics(registry);
  const labels = { group };
  const handleSeconds = metrics.handleSeconds.child(group);
  // Named once per stream rather than once per emitted record.
  const localTopics = new Map<StreamName, string>();
  const localTopic = (outStream: StreamName): string => {
    let name = localTopics.get(outStream);
    if (name === undefined) {
      name = topicFor(dc, outStream);
      localTopics.set(outStream, name);
    }
    return name;
  };
  const heartbeatIntervalMs = Math.min(3_000, Math.floor(sessionTimeoutMs / 3));

  const policy = createRetryPolicy({ dc, stream, service, delaysMs: retryDelaysMs });
  const retryTopicSet = new Set(policy.retryTopicsAcrossDcs(dcs));
  const breaker = createDlqBreaker(breakerOptions);
  const limiter = createKeyedLimiter(concurrency);
  const ownsProducer = !opts.producer;
  const producer = opts.producer ?? createProducer(kafka);
  const outbox = createOutbox(producer);
  // Its own producer and outbox: a checkpoint request that fails never rejects data records, and
  // KafkaJS serializes a producer's metadata look-ups, so a missing checkpoint topic retried on the
  // data producer would stall every data send behind it.
  // Few retries: a failed publish is retried at the next interval anyway, and a long KafkaJS retry
  // loop would outlive stop().
  const checkpointProducer = createProducer(kafka, { retry: { retries: 2 } });
  const checkpointer: Checkpointer = createCheckpointer({
    group,
    dc,
    service,
    codec,
    outbox: createOutbox(checkpointProducer),
    now,
  });
  const caughtUp = createCaughtUpProbe({ kafka, group, checkpointer, now });
  const consumer: Consumer = kafka.consumer({
    groupId: group,
    allowAutoTopicCreation: false,
    maxWaitTimeInMs: 250,
    sessionTimeout: sessionTimeoutMs,
    heartbeatInterval: heartbeatIntervalMs,
  });
  const pauses = createPauseModel({
    target: consumer,
    log,
    probeIntervalMs,
    now,
    onChange: (reasons) => metrics.setPauseReasons(group, reasons),
  });

  let subscribed: string[] = [];
  let joined = false;
  let crashed: string | null = null;
  let stopping = false;
  let lastHeartbeat = now();
  const timers: NodeJS.Timeout[] = [];
  metrics.heartbeatAge(group, () => (now() - lastHeartbeat) / 1000);

  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    joined = true;
    crashed = null;
    lastHeartbeat = now();
    pauses.assigned(payload.memberAssignment);
    caughtUp.assigned(payload.memberAssignment);
  });
  consumer.on(consumer.events.HEARTBEAT, () => {
    lastHeartbeat = now();
  });
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    joined = false;
    crashed = errorHeaderText(payload.error);
    // The restarted consumer starts with nothing paused; the next group join re-applies the model.
    pauses.unassigned();
    caughtUp.unassigned();
    log.error({ err: payload.error, restart: payload.restart }, 'consumer crashed');
  });

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
    pauses.hold(BREAKER_REASON, { until: reopensAt });
    const timer = setTimeout(
      () => {
        if (breaker.isOpen(now())) return;
        metrics.breakerOpen.set(labels, 0);
        log.warn('DLQ breaker half-open: resuming consumption');
      },
      Math.max(0, reopensAt - now()) + 10,
    );
    timer.unref();
  }

  function failureRecord(
    { message, topic, partition, kind, error }: Failure,
    route: FailureRoute,
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

  /** Routes a failed record to its next retry topic or the DLQ, durably, with what it said of its failure. */
  function fail(failure: Failure, told: readonly OutboundRecord[] = []): Decided {
    const { error, topic, partition, message, attempt, kind } = failure;
    const route: FailureRoute = failure.permanent
      ? { kind: 'dead-letter', topic: policy.deadLetterTopic, attempt: attempt + 1 }
      : policy.route(attempt + 1, now());
    if (route.kind === 'retry' && error instanceof RetryLater) {
      route.dueAt = Math.max(route.dueAt, now() + error.afterMs);
    }
    const durable = outbox.send([...told, failureRecord(failure, route)]);
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

  /**
   * Runs the handler on one record and decides it. Synchronous when the handler is and every emit
   * encoded at once (the schema id known, codec.encodeSync): no promise and no turn of the event
   * loop for the usual record; otherwise it waits in `handledLater`.
   */
  function handleOne(
    record: ConsumedRecord<T | null>,
    message: KafkaMessage,
    batchContext: B,
    isTombstone: boolean,
  ): Decided | null | Promise<Decided | null> {
    // What the handler emitted, in order. Closures rather than methods: handlers destructure their
    // context ({ emit, hold }), as KafkaJS's eachBatch payload allows.
    const emitted: Emitted[] = [];
    const context: HandlerContext<B> = {
      batch: batchContext,
      emit(outStream, value, options = {}) {
        emitted.push({
          value: encodeNow(outStream, value),
          topic: options.topic ?? localTopic(outStream),
          key: options.key ?? null,
          headers: options.headers ?? {},
          evenIfFailed: options.evenIfFailed === true,
        });
      },
      derivedMeta(outStream, id) {
        const parent = (record.value as { meta?: Partial<Meta> } | null)?.meta;
        return {
          id: id ?? randomUUID(),
          dt: parent?.dt ?? record.timestamp,
          stream: outStream,
          dc,
          producer: service,
          request_id: parent?.request_id ?? null,
        };
      },
      hold: pauses.hold,
    };
    const started = performance.now();
    let running: Promise<void> | void;
    try {
      running = isTombstone
        ? handler.handleTombstone?.(record as ConsumedRecord<null>, context)
        : handler.handle(record as ConsumedRecord<T>, context);
    } catch (error) {
      handleSeconds.observe((performance.now() - started) / 1000);
      return handlerFailed(record, message, emitted, error);
    }
    if (running || !emitted.every(isEncoded)) return handledLater(record, message, emitted, running, started);
    handleSeconds.observe((performance.now() - started) / 1000);
    return { outcome: 'ok', durable: outbox.send(encodedOutbound(emitted)) };
  }

  /** The rest of handleOne for a handler that returned a promise or an emit still encoding. */
  async function handledLater(
    record: ConsumedRecord<T | null>,
    message: KafkaMessage,
    emitted: readonly Emitted[],
    running: Promise<void> | void,
    started: number,
  ): Promise<Decided | null> {
    let ready: OutboundRecord[];
    try {
      if (running) await running;
      ready = outbound(emitted, await Promise.all(emitted.map((e) => e.value)));
    } catch (error) {
      return handlerFailed(record, message, emitted, error);
    } finally {
      handleSeconds.observe((performance.now() - started) / 1000);
    }
    // A failed send is not the record's fault: it propagates and the batch is fetched again.
    return { outcome: 'ok', durable: outbox.send(ready) };
  }

  /** A handler (or one of its encodes) failed: the record is deferred, retried or dead-lettered. */
  async function handlerFailed(
    record: ConsumedRecord<T | null>,
    message: KafkaMessage,
    emitted: readonly Emitted[],
    error: unknown,
  ): Promise<Decided | null> {
    // An encoding failure here (a registry that is down) fails the batch, which is fetched again.
    const sentAnyway = emitted.filter((e) => e.evenIfFailed);
    const told = outbound(sentAnyway, await Promise.all(sentAnyway.map((e) => e.value)));
    if (error instanceof DeferredRecordError) {
      // Nothing commits for a deferred record, so nothing waits for these: it comes back anyway.
      if (told.length > 0)
        outbox
          .send(told)
          .catch((err: unknown) => log.warn({ err }, 'sending a deferred record’s outputs failed'));
      return null;
    }
    const rejected = error instanceof RejectedRecordError;
    return fail(
      {
        message,
        topic: record.topic,
        partition: record.partition,
        attempt: record.attempt,
        kind: rejected ? `rejected:${error.reason}` : 'handler',
        error,
        permanent: rejected,
      },
      told,
    );
  }

  /**
   * Encodes at once when the codec can (encodeSync), else starts the encode. Never throws: an emit
   * that fails to encode fails the record once its handler is done, as a rejected encode does.
   */
  function encodeNow<O extends StreamName>(stream: O, value: StreamInputs[O]): Buffer | Promise<Buffer> {
    try {
      return codec.encodeSync?.(stream, value) ?? codec.encode(stream, value);
    } catch (error) {
      const failed = Promise.reject(error);
      // Awaited only if the handler succeeds or sends it even if it fails; not an unhandled rejection.
      failed.catch(() => undefined);
      return failed;
    }
  }

  // The steps of one fetched batch, in order: due → decode → prepare → handle → commit → resolve.

  /** How many of the batch's records are due: on a retry topic, those before the first not yet due. */
  function dueCount(payload: EachBatchPayload): { take: number; nextDue: number | null } {
    const { messages } = payload.batch;
    if (!retryTopicSet.has(payload.batch.topic)) return { take: messages.length, nextDue: null };
    for (let i = 0; i < messages.length; i++) {
      const due = headerInt(messages[i]!.headers, HEADER.retryDue) ?? 0;
      if (due > now()) return { take: i, nextDue: due };
    }
    return { take: messages.length, nextDue: null };
  }

  /**
   * Decodes a slice's records: at once while the codec knows their writer schemas (codec.decodeSync;
   * an await per record would cost a turn each, and would delay the next slice's prepareBatch past
   * the handling it should overlap), else from the first unknown one on, awaiting the registry.
   * Throws when the registry is down: not the records' fault.
   */
  function decode(
    payload: EachBatchPayload,
    messages: readonly KafkaMessage[],
  ): RecordTurn<T, B>[] | Promise<RecordTurn<T, B>[]> {
    const { topic, partition } = payload.batch;
    const isRetryTopic = retryTopicSet.has(topic);
    const originDc = parseTopic(topic).dc;
    const consumedRecord = <V>(turn: RecordTurn<T, B>, value: V): ConsumedRecord<V> => ({
      topic,
      partition,
      offset: turn.message.offset,
      key: turn.key,
      timestamp: turn.timestamp,
      headers: turn.message.headers ?? {},
      stream,
      originDc,
      value,
      attempt: isRetryTopic ? (headerInt(turn.message.headers, HEADER.attempt) ?? 1) : 0,
    });
    const valueRead = (turn: RecordTurn<T, B>, value: T) => {
      turn.record = consumedRecord(turn, value);
      turn.eventTime = (value as { meta?: { dt?: number } }).meta?.dt ?? null;
    };
    const unreadable = (turn: RecordTurn<T, B>, error: unknown) => {
      if (decodeFailureKind(error) === null) throw error;
      turn.error = error;
    };
    /** Reads one record into its turn; a promise when the codec must ask the registry first. */
    const read = (message: KafkaMessage): { turn: RecordTurn<T, B>; later?: Promise<void> } => {
      const turn: RecordTurn<T, B> = {
        message,
        record: null,
        tombstone: null,
        error: undefined,
        key: message.key ? message.key.toString('utf8') : null,
        timestamp: Number(message.timestamp),
        eventTime: null,
        prepared: null,
        position: null,
        outcome: 'ok',
      };
      if (!message.value && handler.handleTombstone) turn.tombstone = consumedRecord(turn, null);
      else if (!message.value)
        turn.error = new Error('record has no value (tombstone) on a stream that has none');
      else {
        const bytes = message.value;
        try {
          const value = codec.decodeSync?.(stream, bytes) as T | undefined;
          if (value !== undefined) valueRead(turn, value);
          else {
            const later = codec.decode(stream, bytes).then(
              (decoded) => valueRead(turn, decoded as T),
              (error: unknown) => unreadable(turn, error),
            );
            return { turn, later };
          }
        } catch (error) {
          unreadable(turn, error);
        }
      }
      return { turn };
    };
    const turns: RecordTurn<T, B>[] = [];
    for (let i = 0; i < messages.length; i++) {
      const { turn, later } = read(messages[i]!);
      turns.push(turn);
      if (later) return readRest(later, i + 1);
    }
    return turns;

    async function readRest(first: Promise<void>, from: number): Promise<RecordTurn<T, B>[]> {
      await first;
      for (let i = from; i < messages.length; i++) {
        const { turn, later } = read(messages[i]!);
        turns.push(turn);
        if (later) await later;
      }
      return turns;
    }
  }

  /** A slice without records to prepare keeps the previous slice's context; a failed one fails the rest. */
  async function prepare(good: readonly ConsumedRecord<T>[], previous: Prepared<B>): Promise<Prepared<B>> {
    if (!handler.prepareBatch || good.length === 0 || previous.error !== undefined) return previous;
    metrics.batchesPrepared.inc(labels);
    try {
      return { context: await handler.prepareBatch(good, previous.context) };
    } catch (error) {
      return { error };
    }
  }

  /**
   * The fetched batch cut into the slices it is decoded, prepared and queued in: prepareSlice
   * records each, or the whole batch for a prepareBatch that wants it whole. Without prepareBatch,
   * slices of DECODE_SLICE records, so a large batch's decoded values need not all be alive at once.
   */
  function slicesOf(messages: readonly KafkaMessage[]): KafkaMessage[][] {
    const size = prepareSlice ?? (handler.prepareBatch ? messages.length : DECODE_SLICE);
    const slices: KafkaMessage[][] = [];
    for (let start = 0; start < messages.length; start += size)
      slices.push(messages.slice(start, start + size));
    return slices;
  }

  /**
   * Decodes a slice and prepares it. A decoding failure that is not the records' fault (the
   * registry down) comes back as `broken`: the slice is not handled, and the batch fails once
   * what is in flight has settled and committed.
   */
  async function readySlice(
    payload: EachBatchPayload,
    messages: readonly KafkaMessage[],
    previous: Prepared<B>,
  ): Promise<ReadySlice<T, B>> {
    let turns: RecordTurn<T, B>[];
    try {
      const decoded = decode(payload, messages);
      turns = Array.isArray(decoded) ? decoded : await decoded;
    } catch (error) {
      return { turns: [], prepared: { left: true }, broken: error };
    }
    return { turns, prepared: await prepare(goodOf(turns), previous) };
  }

  const goodOf = (turns: readonly RecordTurn<T, B>[]) => {
    const good: ConsumedRecord<T>[] = [];
    for (const turn of turns) if (turn.record) good.push(turn.record);
    return good;
  };

  /** Hands a record to its handler, or routes what cannot be handled to its retry or the DLQ. */
  function decide(
    turn: RecordTurn<T, B>,
    prepared: Prepared<B>,
    topic: string,
    partition: number,
  ): Decided | null | Promise<Decided | null> {
    const { message, record, tombstone } = turn;
    const batchContext = prepared.context as B;
    if (tombstone && handler.handleTombstone) return handleOne(tombstone, message, batchContext, true);
    if (record && prepared.error === undefined) return handleOne(record, message, batchContext, false);
    if (record) {
      return fail({
        message,
        topic,
        partition,
        attempt: record.attempt,
        kind: 'handler',
        error: prepared.error,
        permanent: false,
      });
    }
    return fail({
      message,
      topic,
      partition,
      attempt: 0,
      kind: decodeFailureKind(turn.error) ?? 'malformed',
      error: turn.error,
      permanent: true,
    });
  }

  /**
   * Heartbeats while the batch runs, so a batch longer than the session timeout (a slow relay under
   * afterDurable) keeps its member. A heartbeat that reports a rebalance stops the batch from taking
   * more records; it is rethrown once the batch has committed, and KafkaJS rejoins.
   */
  function keepAlive(payload: EachBatchPayload) {
    let rebalance: unknown = null;
    const beat = () => {
      payload.heartbeat().then(
        () => undefined,
        (error: unknown) => {
          if (isRebalancing(error)) rebalance ??= error;
          else log.debug({ err: error }, 'heartbeat during a batch failed');
        },
      );
    };
    const timer = setInterval(beat, heartbeatIntervalMs);
    return {
      rebalancing: () => rebalance !== null,
      stop() {
        clearInterval(timer);
        return rebalance;
      },
    };
  }

  async function eachBatch(payload: EachBatchPayload): Promise<void> {
    const { topic, partition } = payload.batch;
    metrics.batchesFetched.inc(labels);
    // Fetched before a hold began, or while KafkaJS's pause state was lost: leave it for later and
    // make sure KafkaJS pauses again, so a hold never turns into a fetch loop.
    if (stopping || pauses.isHeld(topic, partition)) {
      pauses.apply();
      return;
    }

    const tracker = createOffsetTracker<RecordTurn<T, B>>();
    let lastCommit = now();
    let committed: bigint | null = null;
    // Commits are chained so a lower offset can never land after a higher one.
    let commitChain: Promise<void> = Promise.resolve();
    // Records per outcome, counted into the metric at each commit rather than once per record.
    const outcomes: Record<Outcome, number> = { ok: 0, retried: 0, dead_lettered: 0 };
    const countOutcomes = () => {
      for (const outcome of OUTCOMES) {
        if (outcomes[outcome] === 0) continue;
        metrics.records.inc({ group, outcome }, outcomes[outcome]);
        outcomes[outcome] = 0;
      }
    };
    const commit = () => {
      countOutcomes();
      commitChain = commitChain.then(async () => {
        const position = tracker.advance();
        if (!position) return;
        lastCommit = now();
        await payload.commitOffsetsIfNecessary({
          topics: [{ topic, partitions: [{ partition, offset: position.offset.toString() }] }],
        });
        committed = position.offset;
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
    // kafkajs fetches from the resolved offset: resolve exactly what was committed, so records left
    // unfinished (a stop, a hold, a failure) are fetched again, and nothing committed is.
    const resolveCommitted = () => {
      if (committed !== null) payload.resolveOffset((committed - 1n).toString());
    };

    const { take, nextDue } = dueCount(payload);
    const slices = slicesOf(payload.batch.messages.slice(0, take));
    const alive = keepAlive(payload);
    let stoppedEarly = false;
    const succeeded: ConsumedRecord<T>[] = [];
    let failure: { error: unknown } | undefined;
    let lastContext: B | undefined;
    let rebalance: unknown = null;
    try {
      // Records are queued slice by slice; the limiter bounds how many run. A record whose turn
      // comes after a stop, a hold, a rebalance or a breaker trip is left unfinished, which holds
      // the commit below it. Counted rather than collected into promises: this runs once per record.
      let queued = 0;
      let undecided = 0;
      let unsettled = 0;
      let queueing = true;
      const settled = Promise.withResolvers<void>();
      const settledOne = () => {
        if (--unsettled === 0 && !queueing) settled.resolve();
      };
      // Once every record queued is decided and no slice is left to queue, nothing more joins from
      // this batch: send now rather than after the outbox's linger time.
      const decidedOne = () => {
        if (--undecided === 0 && !queueing) void outbox.flush().catch(() => undefined);
      };
      const failed = (error: unknown) => {
        failure ??= { error };
        settledOne();
      };
      /** A record whose outputs (or retry, or dead letter) are in Kafka: it may commit. */
      const durable = (turn: RecordTurn<T, B>) => {
        if (turn.outcome === 'ok' && turn.record) succeeded.push(turn.record);
        outcomes[turn.outcome]++;
        tracker.finish(turn.position!);
        settledOne();
      };
      // Records that joined one outbox request share its promise: one reaction per request rather
      // than per record, the records in the order they came, as reactions would run.
      let waiting: { durable: Promise<void>; turns: RecordTurn<T, B>[] } | null = null;
      const whenDurable = (promise: Promise<void>, turn: RecordTurn<T, B>) => {
        if (waiting?.durable !== promise) {
          const request = { durable: promise, turns: [] as RecordTurn<T, B>[] };
          waiting = request;
          promise.then(
            () => {
              for (const t of request.turns) durable(t);
              // Once per request rather than per record. A failed commit fails the batch at its
              // last commit, which chains after this one.
              if (!handler.afterDurable && now() - lastCommit >= commitIntervalMs)
                void commit().catch(() => {});
            },
            (error: unknown) => {
              for (let i = 0; i < request.turns.length; i++) failed(error);
            },
          );
        }
        waiting.turns.push(turn);
      };
      // A seek from outside (the runtime never seeks) makes what was fetched stale: checked per
      // slice, since KafkaJS answers it by serializing the partition's name.
      let stale = false;
      // A record is decided in its turn of the limiter: synchronously up to the handler, so it
      // is one async step, not three. One runner for the batch's records rather than closures per
      // record: this runs once per record.
      const records: TaskRunner<RecordTurn<T, B>, Decided | null> = {
        run: (turn) => {
          const prepared = turn.prepared!;
          const halted =
            prepared.left ||
            stale ||
            stopping ||
            pauses.isHalted() ||
            alive.rebalancing() ||
            !payload.isRunning();
          return halted ? null : decide(turn, prepared, topic, partition);
        },
        // Not decided: left unfinished (a stop, a hold, a rebalance, a deferred record).
        done: (turn, decided) => {
          // Its value is needed again only by afterDurable: a batch's values need not all live
          // until its end.
          if (!handler.afterDurable) turn.record = null;
          decidedOne();
          if (decided) {
            turn.outcome = decided.outcome;
            whenDurable(decided.durable, turn);
          } else {
            stoppedEarly = true;
            settledOne();
          }
        },
        failed: (_, error) => {
          decidedOne();
          failed(error);
        },
      };
      let next = readySlice(payload, slices[0] ?? [], {});
      for (let s = 0; s < slices.length; s++) {
        const slice = await next;
        if (slice.broken !== undefined) {
          failure ??= { error: slice.broken };
          break;
        }
        if (slice.prepared.left) {
          stoppedEarly = true;
          break;
        }
        stale ||= payload.isStale();
        // afterDurable gets the context of the last slice whose records were handled.
        if (slice.prepared.error === undefined) lastContext = slice.prepared.context;
        // Started before this slice's records are queued: its look-up overlaps their handling.
        if (s + 1 < slices.length) {
          next =
            stopping || pauses.isHalted()
              ? Promise.resolve({ turns: [], prepared: { left: true } })
              : readySlice(payload, slices[s + 1]!, slice.prepared);
        }
        queued += slice.turns.length;
        undecided += slice.turns.length;
        unsettled += slice.turns.length;
        for (const turn of slice.turns) {
          turn.prepared = slice.prepared;
          turn.position = tracker.begin(turn.message.offset, turn);
          limiter.submit(turn.key, records, turn);
        }
      }
      queueing = false;
      if (unsettled === 0) settled.resolve();
      if (undecided === 0 && queued > 0) void outbox.flush().catch(() => undefined);
      metrics.inFlight.set(labels, limiter.active());
      await settled.promise;
      // A failed send leaves its record unfinished, so the commit below stops short of it; the hook
      // still runs for the records that are durable, or they would be handled (and emitted) again.
      if (handler.afterDurable && succeeded.length > 0)
        await handler.afterDurable(succeeded, lastContext as B);
      await commit();
    } finally {
      rebalance = alive.stop();
      resolveCommitted();
    }
    if (failure) throw failure.error;
    if (rebalance) throw rebalance;

    if (nextDue !== null && !stoppedEarly) pauses.holdPartition(topic, partition, nextDue);
    await payload.heartbeat();
  }

  /** The topics that exist now, of those the runtime reads; the rest are looked for again later. */
  function readableTopics(present: ReadonlySet<string>): string[] {
    const wanted = [...topicsAcrossDcs(dcs, stream), ...policy.retryTopicsAcrossDcs(dcs)];
    return wanted.filter((t) => present.has(t));
  }

  const listTopics = () => withAdmin(kafka, async (admin) => new Set(await admin.listTopics()));

  async function run(topics: readonly string[]) {
    subscribed = [...topics];
    await consumer.subscribe({ topics: subscribed, fromBeginning });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently,
      eachBatch,
    });
  }

  /** KafkaJS subscribes once per run: a topic that appeared means a restart of the consumer. */
  async function refreshSubscription() {
    if (stopping) return;
    const found = readableTopics(await listTopics());
    const added = found.filter((t) => !subscribed.includes(t));
    if (added.length === 0 || stopping) return;
    log.info({ added }, 'new topics of the stream: subscribing');
    joined = false;
    await consumer.stop();
    if (stopping) return;
    await run(found);
  }

  return {
    async start() {
      // Every topic it writes, or it would fail record by record (checkpoints: silently).
      const present = await withAdmin(kafka, (admin) =>
        requireTopics(admin, consumerWrites(dc, stream, service, retryDelaysMs), { dc, retryDelaysMs }),
      );
      const topics = readableTopics(present);
      const wanted = [...topicsAcrossDcs(dcs, stream), ...policy.retryTopicsAcrossDcs(dcs)];
      const missing = wanted.filter((t) => !topics.includes(t));
      if (missing.length > 0)
        log.info({ missing }, 'not subscribing to topics that do not exist yet; looking again later');
      if (ownsProducer) await producer.connect();
      await checkpointProducer.connect();
      await consumer.connect();
      await run(topics);
      const checkpoints = setInterval(() => {
        checkpointer.publish().catch((err) => log.warn({ err }, 'checkpoint publish failed; will retry'));
      }, checkpointIntervalMs);
      checkpoints.unref();
      const probes = setInterval(() => {
        caughtUp.probe().catch((err) => log.warn({ err }, 'caught-up probe failed; will retry'));
      }, caughtUpIntervalMs);
      probes.unref();
      let refreshing = false;
      const refresh = setInterval(() => {
        if (refreshing) return;
        refreshing = true;
        refreshSubscription()
          .catch((err) => log.warn({ err }, 'looking for new topics failed; will retry'))
          .finally(() => {
            refreshing = false;
          });
      }, topicRefreshIntervalMs);
      refresh.unref();
      timers.push(checkpoints, probes, refresh);
      log.info({ topics: subscribed, concurrency, retry_delays_ms: retryDelaysMs }, 'consumer started');
    },
    async stop() {
      if (stopping) return;
      stopping = true;
      for (const timer of timers) clearInterval(timer);
      pauses.close();
      await consumer.stop();
      await consumer.disconnect();
      // Offsets are final now: a drained partition leaves a caught-up checkpoint behind.
      await caughtUp.probe().catch((err) => log.warn({ err }, 'final caught-up probe failed'));
      await caughtUp.close();
      await checkpointer.publish().catch((err) => log.warn({ err }, 'final checkpoint publish failed'));
      await outbox.flush();
      if (ownsProducer) await producer.disconnect();
      await checkpointProducer.disconnect();
      joined = false;
      log.info('consumer stopped');
    },
    pause(reason) {
      pauses.hold(reason);
    },
    resume(reason) {
      pauses.release(reason);
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

/** Options given as undefined fall back to the defaults rather than overriding them. */
function definedOnly<O extends object>(options: O): Partial<O> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<O>;
}

/** A record a handler emitted: its bytes (or their encoding under way), where it goes, and whether it goes even if the handler fails. */
interface Emitted {
  value: Buffer | Promise<Buffer>;
  topic: string;
  key: string | null;
  headers: IHeaders;
  evenIfFailed: boolean;
}

const isEncoded = (e: Emitted): boolean => Buffer.isBuffer(e.value);

/** The records to send for emits that are all encoded. */
function encodedOutbound(emitted: readonly Emitted[]): OutboundRecord[] {
  const records: OutboundRecord[] = [];
  for (const { topic, key, headers, value } of emitted)
    records.push({ topic, message: { key, value: value as Buffer, headers } });
  return records;
}

function outbound(emitted: readonly Emitted[], values: readonly Buffer[]): OutboundRecord[] {
  return emitted.map(({ topic, key, headers }, i) => ({
    topic,
    message: { key, value: values[i]!, headers },
  }));
}
