/**
 * A consumer runtime on notify.event under a test's own datacenter, and the events it reads: shared
 * by the runtime's integration tests and the fault-injection suite (test/faults/).
 */
import { randomUUID } from 'node:crypto';
import type { Kafka, Producer } from 'kafkajs';
import { Registry } from 'prom-client';
import {
  type ConsumerRuntime,
  type ConsumerRuntimeOptions,
  createConsumerRuntime,
  type RecordHandler,
  RUNTIME_DEFAULTS,
} from '../../libs/kafka/consumer-runtime.ts';
import { topicFor } from '../../libs/kafka/topics.ts';
import { createSerde } from '../../libs/schemas/serde.ts';
import type { NotifyEvent } from '../../libs/schemas/types.generated.ts';
import { createConsumerTopics, quietLog, REGISTRY_URL } from './harness.ts';

export const serde = createSerde({ registryUrl: REGISTRY_URL });

export function event(dc: string, id: string, type = 'ok', extra: Record<string, string> = {}): NotifyEvent {
  return {
    meta: {
      id: randomUUID(),
      dt: Date.now(),
      stream: 'notify.event',
      dc,
      producer: 'test',
      request_id: null,
    },
    event_id: id,
    type,
    category: 'test',
    agent: null,
    recipients: ['u1'],
    title: null,
    url: null,
    extra,
    bundle_key: null,
    expires_at: null,
  };
}

/** Writes events (or raw bytes) to `<dc>.notify.event`, keyed k0, k1, ... unless `keyOf` says otherwise. */
export async function produceRaw(
  producer: Producer,
  dc: string,
  values: (Buffer | NotifyEvent)[],
  keyOf: (i: number) => string = (i) => `k${i}`,
): Promise<void> {
  const messages = await Promise.all(
    values.map(async (v, i) => ({
      key: keyOf(i),
      value: Buffer.isBuffer(v) ? v : await serde.encode('notify.event', v),
    })),
  );
  await producer.send({ topic: topicFor(dc, 'notify.event'), acks: -1, messages });
}

export type EventRuntimeOptions = Partial<ConsumerRuntimeOptions<'notify.event', unknown>>;

/**
 * A started runtime of service `rt` on `<dc>.notify.event`, with short retry delays and checkpoints,
 * and the retry and dead-letter topics it requires.
 */
export async function startEventRuntime<B = undefined>(
  kafka: Kafka,
  dc: string,
  handler: RecordHandler<NotifyEvent, B>,
  extra: Partial<ConsumerRuntimeOptions<'notify.event', B>> = {},
): Promise<ConsumerRuntime> {
  const options: ConsumerRuntimeOptions<'notify.event', B> = {
    kafka,
    codec: serde,
    log: quietLog,
    registry: new Registry(),
    service: 'rt',
    dc,
    dcs: [dc],
    stream: 'notify.event',
    handler,
    retryDelaysMs: [300, 600],
    checkpointIntervalMs: 200,
    ...extra,
  };
  await createConsumerTopics(kafka, dc, {
    stream: 'notify.event',
    service: options.service,
    retryDelaysMs: options.retryDelaysMs ?? RUNTIME_DEFAULTS.retryDelaysMs,
  });
  const runtime = createConsumerRuntime<'notify.event', B>(options);
  await runtime.start();
  return runtime;
}

/** Sum of a metric's samples in `registry` whose labels include `labels`. */
export async function registryValue(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
    .reduce((sum, v) => sum + v.value, 0);
}
