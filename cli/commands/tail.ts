/**
 * `tidings tail <stream> [--from <time|duration>] [--limit N] [--follow]`: decoded records of a
 * stream from every datacenter prefix on the chosen cluster (local and mirrored copies), oldest
 * first. Without --from, the newest records; with it, the first ones from that time. A record that
 * does not decode is shown with the error instead of its value.
 *
 * With -o json each record is one JSON object per line, so `--follow | jq` works; --follow always
 * prints that way, as a table cannot be aligned before its rows are known.
 */
import { Argument, type Command } from 'commander';
import type { Admin } from 'kafkajs';
import { offsetsAt } from '../../libs/kafka/offsets-at-time.ts';
import { type ReadRange, type ReadRecord, readRanges } from '../../libs/kafka/topic-reader.ts';
import { topicsAcrossDcs } from '../../libs/kafka/topics.ts';
import { STREAMS, type StreamName } from '../../libs/schemas/catalog.ts';
import { createSerde } from '../../libs/schemas/serde.ts';
import { contextOf, usageError } from '../context.ts';
import { progress, withKafka } from '../kafka-session.ts';
import { decodeRecord } from '../record-view.ts';
import { pointInTime } from '../time-option.ts';

interface TailOptions {
  from?: string;
  limit: string;
  follow?: boolean;
}

export function tailCommand(program: Command): void {
  program
    .command('tail')
    .description("decoded records of a stream, from every datacenter's prefix on this cluster")
    .addArgument(new Argument('<stream>', 'stream name').choices(STREAMS))
    .option('--from <time>', 'start at this time (ISO-8601 with a zone, or a duration back like 10m)')
    .option('--limit <n>', 'records to show (without --follow)', '20')
    .option('--follow', 'keep printing new records until interrupted')
    .action(async (stream: StreamName, options: TailOptions, command: Command) => {
      const ctx = contextOf(command);
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1)
        throw usageError(`--limit must be a positive integer, got "${options.limit}"`);
      const from = options.from === undefined ? undefined : pointInTime(options.from, '--from');
      const serde = createSerde({ registryUrl: ctx.registryUrl, registryAccess: ctx.registryAccess });
      await withKafka(ctx, async (kafka, admin) => {
        const present = new Set(await admin.listTopics());
        const topics = topicsAcrossDcs(ctx.knownDcs, stream).filter((t) => present.has(t));
        if (topics.length === 0) {
          progress(`no topic of ${stream} on this cluster`);
          return;
        }
        const ranges = await rangesFor(admin, topics, from, options.follow ? undefined : limit);
        if (options.follow) {
          const stop = new AbortController();
          process.once('SIGINT', () => stop.abort());
          progress(`following ${topics.join(', ')} (Ctrl-C to stop)`);
          await readRanges(kafka, {
            ranges,
            follow: true,
            signal: stop.signal,
            onRecord: (record) => {
              void decodeRecord(serde, stream, record).then((row) =>
                process.stdout.write(`${JSON.stringify(row)}\n`),
              );
              return true;
            },
          });
          return;
        }
        const records: ReadRecord[] = [];
        await readRanges(kafka, {
          ranges,
          onRecord: (r) => {
            records.push(r);
            return true;
          },
        });
        records.sort((a, b) => Number(a.message.timestamp) - Number(b.message.timestamp));
        const shown = from === undefined ? records.slice(-limit) : records.slice(0, limit);
        const rows = await Promise.all(shown.map((r) => decodeRecord(serde, stream, r)));
        if (ctx.output === 'json') {
          for (const row of rows) process.stdout.write(`${JSON.stringify(row)}\n`);
        } else {
          ctx.print(rows, ['topic', 'partition', 'offset', 'timestamp', 'key', 'value', 'error']);
        }
      });
    });
}

/** Per partition: from the time given (up to `limit` records), or the newest `limit` records. */
async function rangesFor(
  admin: Admin,
  topics: readonly string[],
  from: number | undefined,
  limit: number | undefined,
): Promise<ReadRange[]> {
  const starts = from === undefined ? undefined : await offsetsAt(admin, topics, from);
  const ranges: ReadRange[] = [];
  for (const topic of topics) {
    for (const b of await admin.fetchTopicOffsets(topic)) {
      const low = Number(b.low);
      const end = Number(b.high);
      const start = starts?.get(`${topic}:${b.partition}`) ?? Math.max(low, end - (limit ?? 0));
      const to = limit === undefined ? end : Math.min(end, start + limit);
      ranges.push({ topic, partition: b.partition, from: Math.max(start, low), to });
    }
  }
  return ranges;
}
