/**
 * The typed producer library for upstream apps:
 *
 *   const publisher = createPublisher({ brokers, dc: 'eqiad', registryUrl, producer: 'my-app' });
 *   // against a secured cluster and registry, from the variables a Tidings service reads:
 *   //   security: kafkaSecurityFromEnv(process.env), registryAccess: registryAccessFromEnv(process.env)
 *   await publisher.publish('notify.event', { event_id, type, category, recipients: ['42'] });
 *   await publisher.close();
 *
 * It fills the meta envelope, validates the record against the stream's schema before anything
 * is sent (a PublishValidationError names every bad field), encodes it through the registry and
 * sends it to `<dc>.<stream>` with the idempotent acks=all producer, keyed as the architecture
 * says (event id, user id, token hash, address hash, recipient id...).
 */
import { randomUUID } from 'node:crypto';
import type { Producer } from 'kafkajs';
import {
  createKafka,
  createProducer,
  DURABLE_SEND,
  type KafkaLogger,
  type KafkaSecurity,
} from '../kafka/client.ts';
import { isCompacted } from '../kafka/topic-plan.ts';
import { topicFor } from '../kafka/topics.ts';
import { isStream, type StreamName } from '../schemas/catalog.ts';
import type { RegistryAccess } from '../schemas/registry-client.ts';
import { createSerde, type Serde, SerdeError } from '../schemas/serde.ts';
import { recordKey } from '../schemas/stream-keys.ts';
import type { RecordInput, StreamInputs } from '../schemas/types.generated.ts';

export interface PublisherOptions {
  brokers: readonly string[];
  /** This app's datacenter: records go to `<dc>.<stream>`. */
  dc: string;
  registryUrl: string;
  /** Basic auth and CA of the registry, when it needs them. */
  registryAccess?: RegistryAccess;
  /** TLS and SASL of a secured cluster; kafkaSecurityFromEnv (libs/config/connectivity.ts) reads the usual variables. */
  security?: KafkaSecurity;
  /** Name of the publishing app, recorded in meta.producer. */
  producer: string;
  log?: KafkaLogger;
  /** Largest encoded record accepted; default 1 MiB. */
  maxRecordBytes?: number;
}

export interface PublishOptions {
  /** Overrides the stream's default key. */
  key?: string;
  headers?: Record<string, string>;
}

export interface PublishResult {
  topic: string;
  partition: number;
  /** Kafka offset of the record (a string: offsets can pass 2^53). */
  offset: string;
  key: string;
}

export type PublishItem = {
  [S in StreamName]: { stream: S; record: RecordInput<S> } & PublishOptions;
}[StreamName];

export interface PublishManyResult {
  records: number;
  /** Where each partition's share of the batch starts; records follow in the order given. */
  partitions: { topic: string; partition: number; baseOffset: string }[];
}

export interface Publisher {
  publish<S extends StreamName>(
    stream: S,
    record: RecordInput<S>,
    options?: PublishOptions,
  ): Promise<PublishResult>;
  /** Validates every record first: one bad record and nothing is sent. */
  publishMany(items: readonly PublishItem[]): Promise<PublishManyResult>;
  /** A null-valued record for a compacted stream: erases a user, removes a device, lifts a suppression. */
  tombstone(stream: StreamName, key: string): Promise<PublishResult>;
  close(): Promise<void>;
}

export class PublishValidationError extends Error {
  readonly problems: readonly string[];
  constructor(what: string, problems: readonly string[]) {
    super(`${what} is invalid, nothing was sent:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'PublishValidationError';
    this.problems = problems;
  }
}

const META_OVERRIDES = new Set(['dt', 'request_id']);

export interface RecordContext {
  dc: string;
  producer: string;
  now?: () => number;
  newId?: () => string;
}

/**
 * The complete record and its key: meta filled from the context, dt and request_id taken from
 * the input's meta when given. Returns problems instead when the input sets other meta fields.
 */
export function buildRecord<S extends StreamName>(
  stream: S,
  input: RecordInput<S>,
  context: RecordContext,
  key?: string,
): { value: StreamInputs[S]; key: string } | { problems: string[] } {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    return {
      problems: [`(record): expected an object, got ${Array.isArray(input) ? 'array' : String(input)}`],
    };
  }
  const { meta: overrides = {}, ...fields } = input as Record<string, unknown> & {
    meta?: Record<string, unknown>;
  };
  const problems = Object.keys(overrides)
    .filter((name) => !META_OVERRIDES.has(name))
    .map((name) => `meta.${name}: set by the publisher; only meta.dt and meta.request_id may be given`);
  if (problems.length > 0) return { problems };
  const meta = {
    id: (context.newId ?? randomUUID)(),
    dt: overrides.dt ?? (context.now ?? Date.now)(),
    stream,
    dc: context.dc,
    producer: context.producer,
    request_id: overrides.request_id ?? null,
  };
  // Checked against the schema when encoded.
  const value = { meta, ...fields } as unknown as StreamInputs[S];
  return { value, key: key ?? keyOf(stream, value) };
}

/** A record too broken to have a key still deserves its validation problems, not a TypeError. */
function keyOf<S extends StreamName>(stream: S, value: StreamInputs[S]): string {
  try {
    return recordKey(stream, value);
  } catch {
    return '';
  }
}

export function createPublisher(options: PublisherOptions): Publisher {
  const { dc, producer: producerName, log } = options;
  const serde: Serde = createSerde({
    registryUrl: options.registryUrl,
    ...(options.registryAccess ? { registryAccess: options.registryAccess } : {}),
    maxRecordBytes: options.maxRecordBytes,
  });
  const kafka = createKafka({
    clientId: producerName,
    brokers: options.brokers,
    ...(options.security ? { security: options.security } : {}),
    ...(log ? { logger: log } : {}),
  });
  let connecting: Promise<Producer> | undefined;

  function connected(): Promise<Producer> {
    connecting ??= (async () => {
      const p = createProducer(kafka);
      await p.connect();
      return p;
    })().catch((error: unknown) => {
      connecting = undefined;
      throw error;
    });
    return connecting;
  }

  async function prepare(
    stream: StreamName,
    record: unknown,
    key: string | undefined,
  ): Promise<{ topic: string; key: string; value: Buffer } | string[]> {
    if (!isStream(stream)) return [`unknown stream "${stream}"`];
    const built = buildRecord(
      stream,
      record as RecordInput<typeof stream>,
      { dc, producer: producerName },
      key,
    );
    if ('problems' in built) return built.problems;
    try {
      const value = await serde.encode(stream, built.value);
      return { topic: topicFor(dc, stream), key: built.key, value };
    } catch (error) {
      if (error instanceof SerdeError && error.kind === 'invalid') return [...error.problems];
      throw error;
    }
  }

  return {
    async publish(stream, record, publishOptions = {}) {
      const prepared = await prepare(stream, record, publishOptions.key);
      if (Array.isArray(prepared)) throw new PublishValidationError(`${stream} record`, prepared);
      const p = await connected();
      const [meta] = await p.send({
        ...DURABLE_SEND,
        topic: prepared.topic,
        messages: [{ key: prepared.key, value: prepared.value, headers: publishOptions.headers }],
      });
      if (!meta) throw new Error(`Kafka acknowledged no partition for ${prepared.topic}`);
      return {
        topic: prepared.topic,
        partition: meta.partition,
        offset: String(meta.baseOffset),
        key: prepared.key,
      };
    },

    async publishMany(items) {
      const prepared = await Promise.all(items.map((item) => prepare(item.stream, item.record, item.key)));
      const problems = prepared.flatMap((p, i) =>
        Array.isArray(p) ? p.map((problem) => `#${i} ${items[i]!.stream}: ${problem}`) : [],
      );
      if (problems.length > 0) throw new PublishValidationError(`batch of ${items.length} records`, problems);
      const byTopic = new Map<string, { key: string; value: Buffer; headers?: Record<string, string> }[]>();
      prepared.forEach((p, i) => {
        if (Array.isArray(p)) return;
        const messages = byTopic.get(p.topic) ?? [];
        messages.push({ key: p.key, value: p.value, headers: items[i]!.headers });
        byTopic.set(p.topic, messages);
      });
      const p = await connected();
      const acknowledged = await p.sendBatch({
        ...DURABLE_SEND,
        topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
      });
      return {
        records: items.length,
        partitions: acknowledged.map((m) => ({
          topic: m.topicName,
          partition: m.partition,
          baseOffset: String(m.baseOffset),
        })),
      };
    },

    async tombstone(stream, key) {
      if (!isCompacted(stream)) {
        throw new Error(`${stream} is not a compacted stream: a tombstone (null value) means nothing there`);
      }
      const topic = topicFor(dc, stream);
      const p = await connected();
      const [meta] = await p.send({ ...DURABLE_SEND, topic, messages: [{ key, value: null }] });
      if (!meta) throw new Error(`Kafka acknowledged no partition for ${topic}`);
      return { topic, partition: meta.partition, offset: String(meta.baseOffset), key };
    },

    async close() {
      const p = await connecting?.catch(() => undefined);
      connecting = undefined;
      await p?.disconnect();
    },
  };
}
