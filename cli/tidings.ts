#!/usr/bin/env node
/**
 * `tidings`: the operations command.
 *
 *   node cli/tidings.ts [--dc eqiad] [--brokers h:p,...] [--registry url] [-o table|json|csv] <command>
 *
 * Exit codes: 0 ok, 1 the command found a problem (or failed), 2 usage or configuration error.
 */
import { Command, CommanderError, Option } from 'commander';
import { routeProcessWarnings } from '../libs/lifecycle/process-warnings.ts';
import { dkimCommand } from './commands/dkim.ts';
import { dlqCommand } from './commands/dlq.ts';
import { dropCommand } from './commands/drop.ts';
import { explainCommand } from './commands/explain.ts';
import { failoverCommand } from './commands/failover.ts';
import { lagCommand } from './commands/lag.ts';
import { publishCommand } from './commands/publish.ts';
import { replayCommand } from './commands/replay.ts';
import { schemasCommand } from './commands/schemas.ts';
import { tailCommand } from './commands/tail.ts';
import { topicsCommand } from './commands/topics.ts';
import { traceCommand } from './commands/trace.ts';
import { CliError, EXIT } from './context.ts';
import { OUTPUT_FORMATS, printable } from './output.ts';

export function buildProgram(): Command {
  const program = new Command('tidings')
    .description(
      'Tidings operations: topics, schemas, publishing, lag, replay, drop, failover, tail, dead letters, DKIM records and the delivery trail',
    )
    // Before the subcommands exist, so they inherit it: usage errors reach main() as exceptions.
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)')
    .addOption(
      new Option('--dc <dc>', 'datacenter to act on (its cluster and topic prefix)')
        .env('TIDINGS_DC')
        .default('eqiad'),
    )
    .option(
      '--brokers <list>',
      "Kafka brokers, host:port,... (default: the datacenter's, or KAFKA_BROKERS_<DC>)",
    )
    .option(
      '--registry <url>',
      'schema registry, Confluent API (default: SCHEMA_REGISTRY_URL or the local one)',
    )
    .addOption(new Option('-o, --output <format>', 'output format').choices(OUTPUT_FORMATS).default('table'));
  schemasCommand(program);
  topicsCommand(program);
  publishCommand(program);
  lagCommand(program);
  replayCommand(program);
  dropCommand(program);
  failoverCommand(program);
  tailCommand(program);
  dlqCommand(program);
  traceCommand(program);
  explainCommand(program);
  dkimCommand(program);
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  try {
    await buildProgram().parseAsync([...argv], { from: 'user' });
    return Number(process.exitCode ?? EXIT.ok);
  } catch (error) {
    // Commander has already printed its message (and help) for usage errors.
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    if (error instanceof CliError) {
      console.error(`tidings: ${printable(error.message)}`);
      return error.exitCode;
    }
    console.error(`tidings: ${printable(String((error as Error).message ?? error))}`);
    return EXIT.problem;
  }
}

if (import.meta.main) {
  routeProcessWarnings((warning) => console.error(`tidings: warning: ${warning.message}`));
  const code = await main(process.argv.slice(2));
  // Writes to a pipe are asynchronous: exiting before they drain cuts a long plan short.
  for (const stream of [process.stdout, process.stderr]) {
    await new Promise<void>((resolve) => stream.write('', () => resolve()));
  }
  // Clients may keep sockets open (HTTP keep-alive, KafkaJS); the command is done.
  process.exit(code);
}
