/**
 * `tidings schemas register | check | list`: the stream schemas in the registry. Subjects are
 * the same for every datacenter, so --dc does not matter here.
 */
import { type Command, Option } from 'commander';
import { STREAMS, type StreamName } from '../../libs/schemas/catalog.ts';
import { type AdminOptions, checkAll, describeAll, registerAll } from '../../libs/schemas/registry-admin.ts';
import { createRegistryClient } from '../../libs/schemas/registry-client.ts';
import { contextOf, EXIT } from '../context.ts';

interface SchemaCommandOptions {
  stream?: string[];
  schemasDir?: string;
}

export function schemasCommand(program: Command): void {
  const schemas = program
    .command('schemas')
    .description('register and check the stream schemas in the registry');

  withSelection(schemas.command('register'))
    .description('register every stream schema (idempotent: an unchanged schema keeps its id)')
    .action(async (options: SchemaCommandOptions, command: Command) => {
      const ctx = contextOf(command);
      const results = await registerAll(
        createRegistryClient(ctx.registryUrl, ctx.registryAccess),
        adminOptions(options),
      );
      ctx.print(results, ['stream', 'subject', 'status', 'id', 'messages']);
      if (results.some((r) => r.status === 'rejected')) process.exitCode = EXIT.problem;
    });

  withSelection(schemas.command('check'))
    .description('check every stream schema against its subject (BACKWARD); exit 1 if any is incompatible')
    .action(async (options: SchemaCommandOptions, command: Command) => {
      const ctx = contextOf(command);
      const results = await checkAll(
        createRegistryClient(ctx.registryUrl, ctx.registryAccess),
        adminOptions(options),
      );
      ctx.print(results, ['stream', 'subject', 'status', 'messages']);
      if (results.some((r) => r.status === 'incompatible')) process.exitCode = EXIT.problem;
    });

  withSelection(schemas.command('list'))
    .description('where each stream schema stands in the registry')
    .action(async (options: SchemaCommandOptions, command: Command) => {
      const ctx = contextOf(command);
      const states = await describeAll(
        createRegistryClient(ctx.registryUrl, ctx.registryAccess),
        adminOptions(options),
      );
      ctx.print(
        states.map((s) => ({
          stream: s.stream,
          subject: s.subject,
          state: s.state,
          id: s.id,
          latest_version: s.latestVersion,
          latest_id: s.latestId,
        })),
      );
    });
}

function withSelection(command: Command): Command {
  return command
    .addOption(new Option('--stream <streams...>', 'only these streams').choices(STREAMS))
    .option('--schemas-dir <dir>', 'read schemas from this folder instead of schemas/');
}

function adminOptions(options: SchemaCommandOptions): AdminOptions {
  return {
    // commander has checked them against STREAMS.
    ...(options.stream ? { streams: options.stream as StreamName[] } : {}),
    ...(options.schemasDir ? { schemasDir: options.schemasDir } : {}),
  };
}
