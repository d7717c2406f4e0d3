/**
 * The consumer runtime against the raw KafkaJS consume→produce pipe, on the same input bytes.
 *
 * raw:     the raw KafkaJS pipe of raw-pipe.ts: eachBatch → producer.send(batch, acks=all) → commit.
 * raw+avro: the raw pipe plus the Avro work the runtime's handler does (decode, derive, encode),
 *          hand-written without the runtime: the difference to `runtime` is the runtime's own cost.
 * runtime: the full path a service pays for: Avro decode through the registry, handler, Avro encode
 *          of a derived record, group-committed produce with acks=all, lowest-unfinished commit,
 *          checkpoints.
 * Rounds alternate raw and runtime over fresh consumer groups; the report gives medians and the
 * ratios runtime/raw and runtime/raw+avro (goal 0.8), and the process's CPU time per record of
 * raw+avro and runtime with their ratio, which the machine's other load moves much less than the
 * rates. Rates and CPU time are both taken from a pipe's first record to its last commit (start,
 * group join and stop are left out). BENCH_PIPE_RECORDS sets the record count (default 50,000),
 * BENCH_PIPE_ROUNDS the rounds (default 3).
 */
import { randomUUID } from 'node:crypto';
import type { Kafka, KafkaMessage, Message } from 'kafkajs';
import { Registry } from 'prom-client';
import { createProducer } from '../../libs/kafka/client.ts';
import { createConsumerRuntime } from '../../libs/kafka/consumer-runtime.ts';
import { topicFor } from '../../libs/kafka/topics.ts';
import { createSerde } from '../../libs/schemas/serde.ts';
import type { Meta, NotifyEvent, NotifyWebInput } from '../../libs/schemas/types.generated.ts';
import {
  createConsumerTopics,
  createStreamTopics,
  deleteDcTopics,
  quietLog,
  REGISTRY_URL,
  testKafka,
  uniqueDc,
} from '../integration/harness.ts';
import { type PipeRun, pipeWindow, rawPipe } from './raw-pipe.ts';
import { median, round } from './stats.ts';

const RECORDS = Number(process.env.BENCH_PIPE_RECORDS ?? 50_000);
const ROUNDS = Number(process.env.BENCH_PIPE_ROUNDS ?? 3);
const PARTITIONS = 3;

export async function run(): Promise<Record<string, unknown>> {
  const kafka = testKafka('eqiad');
  const serde = createSerde({ registryUrl: REGISTRY_URL });
  const dc = uniqueDc();
  const input = topicFor(dc, 'notify.event');
  await createStreamTopics(
    kafka,
    dc,
    ['notify.event', 'notify.web', 'notify.checkpoint', 'bench.raw-out'],
    PARTITIONS,
  );
  await createConsumerTopics(kafka, dc, { stream: 'notify.event', service: 'bench' });
  try {
    await fill(kafka, serde, dc, input);
    const raw: PipeRun[] = [];
    const rawAvro: PipeRun[] = [];
    const runtime: PipeRun[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const pipe = { kafka, input, records: RECORDS, partitions: PARTITIONS };
      raw.push(await rawPipe({ ...pipe, output: topicFor(dc, 'bench.raw-out') }));
      rawAvro.push(
        await rawPipe({ ...pipe, output: topicFor(dc, 'notify.web'), transform: toWebRecords(serde) }),
      );
      runtime.push(await runtimePipe(kafka, serde, dc));
      console.log(
        `round ${round + 1}: raw ${Math.round(raw.at(-1)!.perSecond)}, raw+avro ${Math.round(rawAvro.at(-1)!.perSecond)}, ` +
          `runtime ${Math.round(runtime.at(-1)!.perSecond)} records/s; CPU per record raw+avro ` +
          `${round1(rawAvro.at(-1)!.cpuUsPerRecord)} µs, runtime ${round1(runtime.at(-1)!.cpuUsPerRecord)} µs`,
      );
    }
    const rates = (runs: PipeRun[]) => runs.map((r) => Math.round(r.perSecond));
    // CPU time of this process per record, pipe by pipe: on a machine shared with other work the
    // rates swing with the load, the CPU a record costs much less.
    const cpu = (runs: PipeRun[]) => runs.map((r) => round1(r.cpuUsPerRecord));
    const rawMedian = median(rates(raw));
    const rawAvroMedian = median(rates(rawAvro));
    const runtimeMedian = median(rates(runtime));
    return {
      records: RECORDS,
      partitions: PARTITIONS,
      rounds: ROUNDS,
      raw_records_per_s: rates(raw),
      runtime_records_per_s: rates(runtime),
      raw_avro_records_per_s: rates(rawAvro),
      raw_median_records_per_s: Math.round(rawMedian),
      raw_avro_median_records_per_s: Math.round(rawAvroMedian),
      runtime_median_records_per_s: Math.round(runtimeMedian),
      ratio_runtime_to_raw: round(runtimeMedian / rawMedian),
      ratio_runtime_to_raw_avro: round(runtimeMedian / rawAvroMedian),
      goal_ratio: 0.8,
      raw_avro_cpu_us_per_record: cpu(rawAvro),
      runtime_cpu_us_per_record: cpu(runtime),
      raw_avro_median_cpu_us_per_record: median(cpu(rawAvro)),
      runtime_median_cpu_us_per_record: median(cpu(runtime)),
      ratio_cpu_raw_avro_to_runtime: round(median(cpu(rawAvro)) / median(cpu(runtime))),
    };
  } finally {
    await deleteDcTopics(kafka, dc);
  }
}

type Serde = ReturnType<typeof createSerde>;

const round1 = (value: number) => round(value, 1);

/** The derived record both the raw+avro pipe and the runtime's handler produce. */
function webRecord(e: NotifyEvent, recipient: string, meta?: Meta): NotifyWebInput {
  return {
    meta: meta ?? { ...e.meta, id: randomUUID(), stream: 'notify.web', producer: 'bench' },
    notification: {
      notification_id: `${e.event_id}:${recipient}:web`,
      event_id: e.event_id,
      event_type: e.type,
      category: e.category,
      recipient_id: recipient,
      agent: e.agent,
      title: e.title ?? '',
      url: e.url ?? '',
      extra: e.extra,
      priority: 1,
      bundle_key: e.bundle_key,
      locale: 'en',
      timezone: 'UTC',
    },
    folded: false,
  };
}

function event(dc: string, i: number): NotifyEvent {
  return {
    meta: {
      id: randomUUID(),
      dt: Date.now(),
      stream: 'notify.event',
      dc,
      producer: 'bench',
      request_id: null,
    },
    event_id: `ev-${i}`,
    type: 'edit-user-talk',
    category: 'edit-user-talk',
    agent: { id: `u${i % 1000}`, name: `User ${i % 1000}` },
    recipients: [`r${i % 5000}`],
    title: 'Someone left a message on your talk page',
    url: `https://example.org/wiki/User_talk:R${i % 5000}`,
    extra: { section: 'Hello' },
    bundle_key: null,
    expires_at: null,
  };
}

async function fill(kafka: Kafka, serde: Serde, dc: string, topic: string) {
  const producer = createProducer(kafka);
  await producer.connect();
  try {
    for (let start = 0; start < RECORDS; start += 5000) {
      const messages = await Promise.all(
        Array.from({ length: Math.min(5000, RECORDS - start) }, async (_, j) => {
          const e = event(dc, start + j);
          return { key: e.event_id, value: await serde.encode('notify.event', e) };
        }),
      );
      await producer.send({ topic, acks: -1, messages });
    }
  } finally {
    await producer.disconnect();
  }
}

/** The derived record the raw+avro pipe produces per event, as the runtime's handler does. */
function toWebRecords(serde: Serde): (messages: KafkaMessage[]) => Promise<Message[]> {
  return (messages) =>
    Promise.all(
      messages.map(async (m) => {
        const e = await serde.decode('notify.event', m.value!);
        return {
          key: e.recipients[0]!,
          value: await serde.encode('notify.web', webRecord(e, e.recipients[0]!)),
        };
      }),
    );
}

async function runtimePipe(kafka: Kafka, serde: Serde, dc: string): Promise<PipeRun> {
  const group = `bench-runtime-${randomUUID()}`;
  const window = pipeWindow(kafka, group, topicFor(dc, 'notify.event'), RECORDS);
  const runtime = createConsumerRuntime<'notify.event'>({
    kafka,
    codec: serde,
    log: quietLog,
    registry: new Registry(),
    service: 'bench',
    group,
    dc,
    dcs: [dc],
    stream: 'notify.event',
    partitionsConsumedConcurrently: PARTITIONS,
    handler: {
      handle(record, ctx) {
        window.first();
        for (const recipient of record.value.recipients) {
          ctx.emit('notify.web', webRecord(record.value, recipient, ctx.derivedMeta('notify.web')), {
            key: recipient,
          });
        }
      },
    },
  });
  await runtime.start();
  const run = await window.done();
  await runtime.stop();
  return run;
}
