/**
 * The variables every Tidings service reads. A service spreads `commonSpec(...)` into its own
 * spec and passes `commonRules` to loadConfig, so all problems still come back in one error.
 */

import { DC_PATTERN } from '../kafka/topics.ts';
import {
  databaseTlsRules,
  databaseTlsSpec,
  kafkaSecurityRules,
  kafkaSecuritySpec,
  registryAccessRules,
  registryAccessSpec,
} from './connectivity.ts';
import { type ConfigOf, type ConfigRule, type Env, readEnv } from './load.ts';
import { bool, duration, list, port, str, url } from './vars.ts';

export const DEFAULT_DC = 'eqiad';
export const DEFAULT_DCS: readonly string[] = ['eqiad', 'codfw'];

/**
 * The local stack shifts all its ports by TIDINGS_PORT_OFFSET (deploy/local/lib.sh), so two
 * checkouts can each run a stack on one machine, with a database of its own (`tidings_<offset>`).
 * Only the local defaults below follow it.
 */
const LOCAL_PORT_OFFSET = Number.parseInt(process.env.TIDINGS_PORT_OFFSET ?? '0', 10) || 0;
export const localPort = (port: number) => port + LOCAL_PORT_OFFSET;

/**
 * The local stack's Kafka cluster per datacenter: the default KAFKA_BROKERS of a service and the
 * cluster the CLI's `--dc` picks. A datacenter missing here has no default; set KAFKA_BROKERS.
 */
export const LOCAL_BROKERS: Readonly<Record<string, readonly string[]>> & {
  readonly eqiad: readonly string[];
  readonly codfw: readonly string[];
} = {
  eqiad: [`127.0.0.1:${localPort(9092)}`],
  codfw: [`127.0.0.1:${localPort(9192)}`],
};

export const DEFAULT_SCHEMA_REGISTRY_URL = `http://127.0.0.1:${localPort(8081)}/apis/ccompat/v7`;
export const DEFAULT_DATABASE_URL = `postgres://postgres@127.0.0.1:5432/tidings${LOCAL_PORT_OFFSET === 0 ? '' : `_${LOCAL_PORT_OFFSET}`}`;

/** pino's levels; `silent` turns logging off. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const DC_EXPECT = 'a lowercase name like eqiad (letters, digits, dashes)';
const HOST_PORT = /^[^\s:,]+:\d+$/;

export interface CommonSpecOptions {
  /** This service's ops server port (HTTP_PORT default). */
  httpPort: number;
}

/** Takes the environment because the default brokers depend on the datacenter chosen there. */
export function commonSpec(env: Env, { httpPort }: CommonSpecOptions) {
  const dc = readEnv(env, 'TIDINGS_DC') ?? DEFAULT_DC;
  const brokers = LOCAL_BROKERS[dc];
  return {
    TIDINGS_DC: str({
      default: DEFAULT_DC,
      pattern: DC_PATTERN,
      expect: DC_EXPECT,
      help: 'datacenter this process runs in',
    }),
    TIDINGS_DCS: list({
      default: DEFAULT_DCS,
      pattern: DC_PATTERN,
      itemExpect: 'datacenter names (lowercase letters, digits, dashes)',
      help: 'every datacenter whose topics this process reads, its own included',
    }),
    KAFKA_BROKERS: list(
      brokers
        ? {
            default: brokers,
            pattern: HOST_PORT,
            itemExpect: 'host:port',
            help: 'Kafka cluster of this datacenter',
          }
        : {
            pattern: HOST_PORT,
            itemExpect: 'host:port',
            help: `Kafka cluster of this datacenter; "${dc}" has no default`,
          },
    ),
    ...kafkaSecuritySpec,
    SCHEMA_REGISTRY_URL: url({
      default: DEFAULT_SCHEMA_REGISTRY_URL,
      protocols: ['http', 'https'],
      help: 'Confluent-compatible schema registry API',
    }),
    ...registryAccessSpec,
    DATABASE_URL: url({
      default: DEFAULT_DATABASE_URL,
      protocols: ['postgres', 'postgresql'],
      secret: true,
    }),
    ...databaseTlsSpec,
    DATABASE_SCHEMA: str({
      optional: true,
      pattern: /^[a-z_][a-z0-9_]{0,62}$/,
      expect: 'a plain lower-case identifier',
      help: "Postgres schema holding the service's tables; default: the service's name (tests use their own)",
    }),
    LOG_LEVEL: str({ default: 'info', choices: LOG_LEVELS }),
    HTTP_PORT: port({ default: httpPort, help: 'ops server: /metrics, /healthz, /readyz, /_info' }),
    DELIVERY_TRAIL: bool({
      default: true,
      help: 'false: this service writes none of its decisions to the delivery trail (notify.status); `tidings trace` then shows nothing of its stage',
    }),
    SHUTDOWN_TIMEOUT: duration({
      default: 25_000,
      min: 1,
      help: 'how long a graceful shutdown may take before the process exits 1',
    }),
  };
}

export type CommonConfig = ConfigOf<ReturnType<typeof commonSpec>>;

export const commonRules: readonly ConfigRule<CommonConfig>[] = [
  {
    vars: ['TIDINGS_DCS', 'TIDINGS_DC'],
    check: (c) =>
      c.TIDINGS_DCS.includes(c.TIDINGS_DC)
        ? undefined
        : `${JSON.stringify(c.TIDINGS_DCS.join(','))} does not include TIDINGS_DC ${JSON.stringify(c.TIDINGS_DC)}; ` +
          `add ${c.TIDINGS_DC} to it or change TIDINGS_DC`,
  },
  ...kafkaSecurityRules,
  ...registryAccessRules,
  ...databaseTlsRules,
];
