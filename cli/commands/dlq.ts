/**
 * `tidings dlq ls | show | replay`: the dead-letter topics services write
 * (`<dc>.<stream>.<service>.dlq`, libs/kafka/topics.ts) and the headers the runtime puts on each
 * record (libs/kafka/record-headers.ts).
 *
 * `replay` re-publishes the dead letters of this datacenter's service to `<dc>.<stream>` with
 * their key, value bytes and upstream headers (the runtime's own headers dropped, so a record
 * that fails again starts a fresh attempt count), then deletes the replayed records from the DLQ
 * so a second replay does not send them again. Sinks deduplicate on notification_id, so a crash
 * between the two steps costs duplicates at worst, never loss. A DLQ whose dead letters are raw
 * bytes from outside (HEADER.rawBytes: the bounce receiver's mail) is refused before anything is
 * sent: those bytes may themselves be a well-formed record, and replaying would make them trusted.
 */
import { Argument, type Command, Option } from 'commander';
import type { Admin, Kafka } from 'kafkajs';
import { createProducer, DURABLE_SEND } from '../../libs/kafka/client.ts';
import { HEADER, headerInt, headerString, passThroughHeaders } from '../../libs/kafka/record-headers.ts';
import { type ReadRecord, readRanges } from '../../libs/kafka/topic-reader.ts';
import { dlqTopic, topicFor } from '../../libs/kafka/topics.ts';
import { STREAMS, type StreamName } from '../../libs/schemas/catalog.ts';
import { createSerde } from '../../libs/schemas/serde.ts';
import { CliError, contextOf, EXIT, usageError } from '../context.ts';
import { progress, withKafka } from '../kafka-session.ts';
import { decodeRecord } from '../record-view.ts';

interface DlqOptions {
  service: string;
  limit: string;
  execute?: boolean;
}

export function dlqCommand(program: Command): void {
  const dlq = program.command('dlq').description("services' dead-letter topics");

  dlq
    .command('ls')
    .description('dead-letter topics on this cluster with the records they hold, per service and stream')
    .action(async (_options: object, command: Command) => {
      const ctx = contextOf(command);
      const rows = await withKafka(ctx, async (_kafka, admin) => {
        const topics = (await admin.listTopics()).filter((t) => t.endsWith('.dlq')).sort();
        return Promise.all(
          topics.map(async (topic) => {
            const parts = topic.split('.');
            const bounds = await admin.fetchTopicOffsets(topic);
            return {
              topic,
              dc: parts[0],
              stream: parts.slice(1, -2).join('.'),
              service: parts.at(-2),
              records: bounds.reduce((sum, b) => sum + Number(b.high) - Number(b.low), 0),
            };
          }),
        );
      });
      ctx.print(rows, ['topic', 'dc', 'stream', 'service', 'records']);
    });

  withStream(dlq.command('show'))
    .description('dead letters of a service with where they came from and why they failed')
    .option('--limit <n>', 'records to show, oldest first', '20')
    .action(async (stream: StreamName, options: DlqOptions, command: Command) => {
      const ctx = contextOf(command);
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1) {
        throw usageError(`--limit must be a positive integer, got "${options.limit}"`);
      }
      const topic = dlqTopic(ctx.dc, stream, options.service);
      const serde = createSerde({ registryUrl: ctx.registryUrl, registryAccess: ctx.registryAccess });
      const records = await withKafka(ctx, (kafka, admin) => readDlq(kafka, admin, topic, limit));
      const rows = await Promise.all(
        records.map(async (r) => {
          const { headers: _h, ...view } = await decodeRecord(serde, stream, r);
          const h = r.message.headers;
          return {
            ...view,
            source_topic: headerString(h, HEADER.sourceTopic) ?? null,
            source_partition: headerInt(h, HEADER.sourcePartition) ?? null,
            source_offset: headerString(h, HEADER.sourceOffset) ?? null,
            error_kind: headerString(h, HEADER.errorKind) ?? null,
            error_message: headerString(h, HEADER.errorMessage) ?? null,
            attempts: headerInt(h, HEADER.attempt) ?? null,
            failed_at: headerString(h, HEADER.failedAt) ?? null,
            upstream_headers: Object.keys(passThroughHeaders(h)),
          };
        }),
      );
      ctx.print(
        rows,
        ctx.output === 'table'
          ? [
              'partition',
              'offset',
              'key',
              'source_topic',
              'source_partition',
              'source_offset',
              'error_kind',
              'attempts',
              'error_message',
            ]
          : undefined,
      );
    });

  withStream(dlq.command('replay'))
    .description(
      're-publish dead letters to <dc>.<stream> with their key and upstream headers (plan unless --execute)',
    )
    .option('--execute', 're-publish, then remove the replayed records from the DLQ')
    .action(async (stream: StreamName, options: DlqOptions, command: Command) => {
      const ctx = contextOf(command);
      const topic = dlqTopic(ctx.dc, stream, options.service);
      const target = topicFor(ctx.dc, stream);
      const execute = options.execute ?? false;
      await withKafka(ctx, async (kafka, admin) => {
        const records = await readDlq(kafka, admin, topic, Number.POSITIVE_INFINITY);
        const raw = records.filter((r) => headerString(r.message.headers, HEADER.rawBytes) !== undefined);
        if (raw.length > 0) {
          throw new CliError(
            `${topic} holds ${raw.length} dead letter(s) of raw external bytes, which replay would turn into trusted ${stream} records; inspect them with \`tidings dlq show\` and have the sender deliver again (see docs/security.md)`,
            EXIT.problem,
          );
        }
        const perPartition = Map.groupBy(records, (r) => r.partition);
        if (execute && records.length > 0) {
          progress(`re-publishing ${records.length} record(s) from ${topic} to ${target}`);
          const producer = createProducer(kafka);
          await producer.connect();
          try {
            // Bounded batches keep each produce request well under the broker's size limit.
            for (let i = 0; i < records.length; i += 500) {
              await producer.send({
                topic: target,
                ...DURABLE_SEND,
                messages: records.slice(i, i + 500).map(({ message }) => ({
                  key: message.key,
                  value: message.value,
                  headers: passThroughHeaders(message.headers),
                })),
              });
            }
          } finally {
            await producer.disconnect();
          }
          await admin.deleteTopicRecords({
            topic,
            partitions: [...perPartition].map(([partition, rs]) => ({
              partition,
              offset: String(Math.max(...rs.map((r) => Number(r.message.offset))) + 1),
            })),
          });
        }
        ctx.print(
          [...perPartition].map(([partition, rs]) => ({
            dlq: topic,
            partition,
            records: rs.length,
            target,
            action: execute ? 'replayed' : 'plan',
          })),
          ['dlq', 'partition', 'records', 'target', 'action'],
        );
        if (!execute) progress('plan only: nothing changed (run with --execute to re-publish)');
      });
    });
}

function withStream(command: Command): Command {
  return command
    .addArgument(new Argument('<stream>', 'stream the service consumes').choices(STREAMS))
    .addOption(
      new Option('--service <service>', 'service whose dead letters to act on').makeOptionMandatory(),
    );
}

/** The oldest `limit` records of each partition of a DLQ, in partition and offset order. */
async function readDlq(kafka: Kafka, admin: Admin, topic: string, limit: number): Promise<ReadRecord[]> {
  if (!(await admin.listTopics()).includes(topic))
    throw new CliError(`no dead-letter topic ${topic}`, EXIT.problem);
  const bounds = await admin.fetchTopicOffsets(topic);
  const records: ReadRecord[] = [];
  await readRanges(kafka, {
    ranges: bounds.map((b) => ({
      topic,
      partition: b.partition,
      from: Number(b.low),
      to: Math.min(Number(b.high), Number(b.low) + limit),
    })),
    onRecord: (record) => {
      records.push(record);
      return true;
    },
  });
  return records
    .sort((a, b) => a.partition - b.partition || Number(a.message.offset) - Number(b.message.offset))
    .slice(0, limit);
}
