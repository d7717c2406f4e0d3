/**
 * What every `tidings` command shares: the datacenter it acts on, that datacenter's brokers, the
 * registry, the output format, and exit codes (0 ok, 1 the command found a problem, 2 usage or
 * configuration error). A secured cluster or registry is reached with the same variables the
 * services read (KAFKA_TLS*, KAFKA_SASL_*, SCHEMA_REGISTRY_*; libs/config/connectivity.ts).
 */
import type { Command } from 'commander';
import { DEFAULT_SCHEMA_REGISTRY_URL, LOCAL_BROKERS } from '../libs/config/common.ts';
import {
  kafkaSecurity,
  kafkaSecurityRules,
  kafkaSecuritySpec,
  registryAccess,
  registryAccessRules,
  registryAccessSpec,
} from '../libs/config/connectivity.ts';
import { ConfigError, type ConfigOf, loadConfig } from '../libs/config/load.ts';
import { type KafkaSecurity, parseBrokers } from '../libs/kafka/client.ts';
import { assertDc } from '../libs/kafka/topics.ts';
import type { RegistryAccess } from '../libs/schemas/registry-client.ts';
import { type OutputFormat, type Row, render } from './output.ts';

export const EXIT = { ok: 0, problem: 1, usage: 2 } as const;

/** An error whose message is the whole story; the CLI prints it and exits with `exitCode`. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

export const usageError = (message: string) => new CliError(message, EXIT.usage);

export interface GlobalOptions {
  dc: string;
  brokers?: string;
  registry?: string;
  output: OutputFormat;
}

export interface CliContext {
  dc: string;
  brokers: string[];
  registryUrl: string;
  registryAccess: RegistryAccess;
  kafkaSecurity: KafkaSecurity;
  /** The loaded KAFKA_* security variables, to name the one to fix when the cluster refuses us. */
  kafkaSecurityConfig: ConfigOf<typeof kafkaSecuritySpec>;
  output: OutputFormat;
  /** Every datacenter this deployment knows: the broker map's and the one acted on. */
  knownDcs: string[];
  print(rows: readonly Row[], columns?: readonly string[]): void;
}

export function resolveContext(options: GlobalOptions, env: NodeJS.ProcessEnv = process.env): CliContext {
  let dc: string;
  try {
    dc = assertDc(options.dc);
  } catch (error) {
    throw usageError((error as Error).message);
  }
  const envName = `KAFKA_BROKERS_${dc.toUpperCase().replaceAll('-', '_')}`;
  const brokerList = options.brokers ?? env[envName];
  const brokers = brokerList !== undefined ? parseBrokers(brokerList) : [...(LOCAL_BROKERS[dc] ?? [])];
  if (brokers.length === 0) {
    throw usageError(`no brokers known for datacenter "${dc}": pass --brokers or set ${envName}`);
  }
  const registryUrl = options.registry ?? env.SCHEMA_REGISTRY_URL ?? DEFAULT_SCHEMA_REGISTRY_URL;
  const spec = { ...kafkaSecuritySpec, ...registryAccessSpec };
  let connectivity: ConfigOf<typeof spec>;
  try {
    connectivity = loadConfig(spec, env, { rules: [...kafkaSecurityRules, ...registryAccessRules] });
  } catch (error) {
    if (error instanceof ConfigError) throw usageError(error.message);
    throw error;
  }
  return {
    dc,
    brokers,
    registryUrl,
    registryAccess: registryAccess(connectivity),
    kafkaSecurity: kafkaSecurity(connectivity),
    kafkaSecurityConfig: connectivity,
    output: options.output,
    knownDcs: [...new Set([...Object.keys(LOCAL_BROKERS), dc])],
    print(rows, columns) {
      process.stdout.write(render(options.output, rows, columns));
    },
  };
}

export function contextOf(command: Command): CliContext {
  return resolveContext(command.optsWithGlobals<GlobalOptions>());
}
