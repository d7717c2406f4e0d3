/**
 * How every Tidings service starts, so that a service's main.ts is only its story: its config,
 * its handlers and their wiring. In order: validate config (exit 2 naming every problem), log the
 * effective config, open metrics and the ops server, migrate the service's own Postgres schema,
 * connect Kafka, check that every topic the plan says it writes exists (services never create
 * topics), connect the registry, run the service's start(), and turn SIGTERM into an orderly stop
 * (consumers first, then the ops server, then the database).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Kafka } from 'kafkajs';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { commonRules, commonSpec } from '../config/common.ts';
import { databaseTls, kafkaConnectProblem, kafkaSecurity, registryAccess } from '../config/connectivity.ts';
import {
  acceptedVariables,
  ConfigError,
  type ConfigOf,
  type ConfigRule,
  describeConfig,
  loadConfig,
  type Spec,
} from '../config/load.ts';
import { migrate } from '../db/migrate.ts';
import { createPool } from '../db/pool.ts';
import { classifyConnectFailure, createKafka, probeKafka, withAdmin } from '../kafka/client.ts';
import {
  type ConsumerRuntime,
  type ConsumerRuntimeOptions,
  createConsumerRuntime,
} from '../kafka/consumer-runtime.ts';
import { startLagExporter } from '../kafka/lag-exporter.ts';
import { requireTopics } from '../kafka/topic-check.ts';
import { plannedGroup, serviceWrites } from '../kafka/topic-plan.ts';
import { routeProcessWarnings } from '../lifecycle/process-warnings.ts';
import { createShutdown } from '../lifecycle/shutdown.ts';
import { createLogger } from '../log/logger.ts';
import { startOpsServer } from '../metrics/ops-server.ts';
import { createRegistry } from '../metrics/registry.ts';
import type { StreamName } from '../schemas/catalog.ts';
import { createSerde, type Serde } from '../schemas/serde.ts';
import { consumerSpec, runtimeTuning } from './consumer-config.ts';

type BaseSpec = ReturnType<typeof commonSpec> & typeof consumerSpec;

/** The whole configuration a service's start() receives: common, consumer and its own variables. */
export type ServiceConfig<S extends Spec> = ConfigOf<BaseSpec & S>;

export interface ServiceContext<C> {
  name: string;
  config: C;
  log: Logger;
  registry: Registry;
  kafka: Kafka;
  serde: Serde;
  /** The service's pool, search_path set to its own schema; null for a service without migrations. */
  db: pg.Pool | null;
  onShutdown(name: string, fn: () => Promise<void> | void): void;
  addReadiness(
    name: string,
    check: () => { ok: boolean; detail?: string } | Promise<{ ok: boolean; detail?: string }>,
  ): void;
  /** A consumer runtime with the service's names, config and shutdown wired in; already started. */
  consume<S extends StreamName, B = undefined>(
    options: Omit<
      ConsumerRuntimeOptions<S, B>,
      'kafka' | 'codec' | 'log' | 'registry' | 'service' | 'dc' | 'dcs'
    >,
  ): Promise<ConsumerRuntime>;
}

export interface ServiceDefinition<S extends Spec> {
  name: string;
  /** Default ops port; HTTP_PORT overrides. */
  httpPort: number;
  spec?: S;
  rules?: readonly ConfigRule<ConfigOf<BaseSpec & S>>[];
  /** Folder of NNNN_name.sql files applied to the service's Postgres schema (DATABASE_SCHEMA, default its name). */
  migrations?: string;
  start(context: ServiceContext<ConfigOf<BaseSpec & S>>): Promise<void>;
  env?: NodeJS.ProcessEnv;
}

const VERSION = (
  JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as {
    version: string;
  }
).version;

export async function runService<S extends Spec = Record<never, never>>(
  def: ServiceDefinition<S>,
): Promise<void> {
  const env = def.env ?? process.env;
  const spec = {
    ...commonSpec(env, { httpPort: def.httpPort }),
    ...consumerSpec,
    ...(def.spec ?? {}),
  } as BaseSpec & S;
  // `main.ts --accepted-env`: the variables this service reads, as JSON, without starting it;
  // `make deploy-check` holds every Kubernetes Deployment's environment against this list.
  if (process.argv.includes('--accepted-env')) {
    process.stdout.write(`${JSON.stringify(acceptedVariables(spec).sort())}\n`);
    process.exit(0);
  }
  let config: ConfigOf<BaseSpec & S>;
  try {
    config = loadConfig(spec, env, {
      rules: [...commonRules, ...(def.rules ?? [])] as readonly ConfigRule<ConfigOf<BaseSpec & S>>[],
    });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${def.name}: cannot start, the configuration is invalid:\n${error.message}\n`);
    process.exit(2);
  }
  // The service's own variables are typed for start(); the runtime only needs the common ones.
  const base = config as unknown as ConfigOf<BaseSpec>;

  const log = createLogger({ service: def.name, level: base.LOG_LEVEL, dc: base.TIDINGS_DC });
  routeProcessWarnings((warning) => log.warn({ err: warning }, 'process warning'));
  const effective = describeConfig(spec, config);
  log.info({ config: effective, version: VERSION }, `${def.name} starting`);

  const shutdown = createShutdown({ log, timeoutMs: base.SHUTDOWN_TIMEOUT });
  const registry = createRegistry({ defaultLabels: { service: def.name, dc: base.TIDINGS_DC } });
  const checks = new Map<
    string,
    () => { ok: boolean; detail?: string } | Promise<{ ok: boolean; detail?: string }>
  >();

  try {
    let db: pg.Pool | null = null;
    if (def.migrations) {
      const schema = base.DATABASE_SCHEMA ?? def.name;
      const pool = createPool({
        url: base.DATABASE_URL,
        schema,
        applicationName: def.name,
        ssl: databaseTls(base),
        log,
      });
      db = pool;
      shutdown.onShutdown('postgres pool', () => pool.end());
      const applied = await migrate(pool, { schema, dir: def.migrations, log });
      log.info({ applied }, 'database schema up to date');
      checks.set('postgres', async () => {
        await pool.query('select 1');
        return { ok: true };
      });
    }

    // Not ready before start() is done: the consumers it has not started yet have no check of
    // their own, and a rollout must not count this pod in while its main consumer is missing. Set
    // before the ops server answers, so nothing in between (the Kafka probe) reads as ready.
    let started = false;
    checks.set('start-up', () => (started ? { ok: true } : { ok: false, detail: 'starting' }));
    const ops = await startOpsServer({
      port: base.HTTP_PORT,
      registry,
      log,
      info: {
        name: def.name,
        version: VERSION,
        dc: base.TIDINGS_DC,
        dcs: base.TIDINGS_DCS,
        config: effective,
      },
      readiness: async () => {
        const results: Record<string, { ok: boolean; detail?: string }> = {};
        for (const [name, check] of checks) {
          try {
            results[name] = await check();
          } catch (error) {
            results[name] = { ok: false, detail: (error as Error).message };
          }
        }
        return { ready: Object.values(results).every((r) => r.ok), checks: results };
      },
    });
    shutdown.onShutdown('ops server', () => ops.close());
    log.info({ port: ops.port }, 'ops server listening: /metrics /healthz /readyz /_info');

    const kafka = createKafka({
      clientId: `${def.name}-${base.TIDINGS_DC}`,
      brokers: base.KAFKA_BROKERS,
      logger: log,
      security: kafkaSecurity(base),
    });
    await probeKafka(kafka).catch((error: unknown) => {
      throw new Error(kafkaConnectProblem(classifyConnectFailure(error), base, base.KAFKA_BROKERS), {
        cause: error,
      });
    });
    // Every topic the plan says this service writes, at once: one error names all that are missing
    // (each consumer checks its own again, for consumers the plan does not list).
    await withAdmin(kafka, (admin) =>
      requireTopics(admin, serviceWrites(def.name, base.TIDINGS_DC, base.RETRY_DELAYS), {
        dc: base.TIDINGS_DC,
        retryDelaysMs: base.RETRY_DELAYS,
      }),
    );
    const serde = createSerde({
      registryUrl: base.SCHEMA_REGISTRY_URL,
      registryAccess: registryAccess(base),
    });
    // kafka_consumergroup_lag(_seconds) for the groups this process runs, in kafka_exporter's names.
    const ownedGroups: string[] = [];
    const lagExporter = startLagExporter({ kafka, registry, groups: ownedGroups, log });
    shutdown.onShutdown('lag exporter', () => lagExporter.stop());

    await def.start({
      name: def.name,
      config,
      log,
      registry,
      kafka,
      serde,
      db,
      onShutdown: shutdown.onShutdown,
      addReadiness: (name, check) => checks.set(name, check),
      async consume(options) {
        const group = options.group ?? plannedGroup(def.name, options.stream) ?? def.name;
        const runtime = createConsumerRuntime({
          ...runtimeTuning(base),
          ...options,
          group,
          kafka,
          codec: serde,
          log,
          registry,
          service: def.name,
          dc: base.TIDINGS_DC,
          dcs: base.TIDINGS_DCS,
        });
        ownedGroups.push(group);
        shutdown.onShutdown(`consumer ${group}`, () => runtime.stop());
        checks.set(`consumer ${group}`, () => runtime.readiness());
        await runtime.start();
        return runtime;
      },
    });
    started = true;
    log.info(`${def.name} started`);
  } catch (error) {
    await shutdown.fail(`${def.name} failed to start`, error);
  }
}
