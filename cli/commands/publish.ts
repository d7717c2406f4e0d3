/**
 * `tidings publish <stream> --file record.json`: publishes one record (a JSON object) or several
 * (a JSON array) the way an upstream app would, through libs/publish: meta filled, validated
 * before sending, keyed per stream.
 */
import { readFileSync } from 'node:fs';
import { Argument, type Command, Option } from 'commander';
import { createPublisher, type PublishItem, PublishValidationError } from '../../libs/publish/publish.ts';
import { STREAMS, type StreamName } from '../../libs/schemas/catalog.ts';
import type { RecordInput } from '../../libs/schemas/types.generated.ts';
import { CliError, contextOf, EXIT, usageError } from '../context.ts';

interface PublishCommandOptions {
  file: string;
  key?: string;
  header?: string[];
}

export function publishCommand(program: Command): void {
  program
    .command('publish')
    .description(
      "publish records to <dc>.<stream>; meta is filled in (a record's meta may set dt and request_id)",
    )
    .addArgument(new Argument('<stream>', 'stream name').choices(STREAMS))
    .requiredOption(
      '-f, --file <path>',
      'JSON file with one record (an object) or several (an array); - for stdin',
    )
    .option('--key <key>', "record key (default: the stream's key field)")
    .addOption(new Option('--header <name=value...>', 'Kafka headers'))
    .action(async (stream: StreamName, options: PublishCommandOptions, command: Command) => {
      const ctx = contextOf(command);
      const records = readRecords(options.file);
      if (records.length > 1 && options.key !== undefined) {
        throw usageError('--key applies to a single record; the file holds several');
      }
      const headers = parseHeaders(options.header ?? []);
      const publisher = createPublisher({
        brokers: ctx.brokers,
        dc: ctx.dc,
        registryUrl: ctx.registryUrl,
        registryAccess: ctx.registryAccess,
        security: ctx.kafkaSecurity,
        producer: 'tidings-cli',
      });
      try {
        if (records.length === 1) {
          const result = await publisher.publish(stream, records[0] as RecordInput<typeof stream>, {
            ...(options.key !== undefined ? { key: options.key } : {}),
            headers,
          });
          ctx.print([result], ['topic', 'partition', 'offset', 'key']);
        } else {
          const result = await publisher.publishMany(
            records.map((record) => ({ stream, record, headers }) as PublishItem),
          );
          ctx.print(
            result.partitions.map((p) => ({
              topic: p.topic,
              partition: p.partition,
              base_offset: p.baseOffset,
            })),
          );
        }
      } catch (error) {
        if (error instanceof PublishValidationError) throw new CliError(error.message, EXIT.problem);
        throw error;
      } finally {
        await publisher.close();
      }
    });
}

function readRecords(file: string): unknown[] {
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (error) {
    throw usageError(`cannot read ${file}: ${(error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw usageError(`${file} is not JSON: ${(error as Error).message}`);
  }
  const records = Array.isArray(parsed) ? parsed : [parsed];
  if (records.length === 0) throw usageError(`${file} holds an empty array: nothing to publish`);
  return records;
}

function parseHeaders(pairs: readonly string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw usageError(`--header "${pair}" is not name=value`);
    headers[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return headers;
}
