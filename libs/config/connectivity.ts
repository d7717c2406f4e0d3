/**
 * How a process reaches secured infrastructure: Kafka over TLS (a CA, a client certificate for
 * mTLS) and SASL (PLAIN, SCRAM, OAUTHBEARER), the schema registry with basic auth and its own CA,
 * Postgres with an sslmode and a CA. Services get these through commonSpec, the CLI loads them on
 * their own. Secrets come from the variable or from NAME_FILE (libs/config/load.ts); certificate
 * and key variables are paths, read and checked at start-up.
 *
 * This is also the one place that knows which variable fixes which connection failure, so the
 * error an operator sees names it.
 */
import { readFile } from 'node:fs/promises';
import type { ConnectionOptions } from 'node:tls';
import type { ConnectFailure, KafkaSecurity, SaslMechanism } from '../kafka/client.ts';
import type { RegistryAccess } from '../schemas/registry-client.ts';
import { type ConfigOf, type ConfigRule, type Env, loadConfig } from './load.ts';
import { bool, file, type LoadedFile, str } from './vars.ts';

const PEM = /-----BEGIN [A-Z0-9 ]+-----/;
const pem = (what: string) => file({ optional: true, contains: PEM, expect: `a PEM ${what} file` });

export const SASL_MECHANISMS: readonly SaslMechanism[] = [
  'plain',
  'scram-sha-256',
  'scram-sha-512',
  'oauthbearer',
];

export const kafkaSecuritySpec = {
  KAFKA_TLS: bool({ default: false, help: 'connect to Kafka over TLS (SSL or SASL_SSL listeners)' }),
  KAFKA_TLS_CA_FILE: pem('CA certificate'),
  KAFKA_TLS_CERT_FILE: pem('client certificate'),
  KAFKA_TLS_KEY_FILE: pem('private key'),
  KAFKA_SASL_MECHANISM: str({ optional: true, choices: SASL_MECHANISMS }),
  KAFKA_SASL_USERNAME: str({ optional: true }),
  KAFKA_SASL_PASSWORD: str({ optional: true, secret: true }),
  KAFKA_SASL_OAUTHBEARER_TOKEN_FILE: file({
    optional: true,
    help: 'a file holding the current OAUTHBEARER token, read again at every login (a projected, rotating token)',
  }),
};

export const registryAccessSpec = {
  SCHEMA_REGISTRY_USERNAME: str({ optional: true }),
  SCHEMA_REGISTRY_PASSWORD: str({ optional: true, secret: true }),
  SCHEMA_REGISTRY_CA_FILE: pem('CA certificate'),
};

/** libpq's names; `prefer` and `allow` are left out because they fall back to plaintext silently. */
export const DATABASE_SSL_MODES = ['disable', 'require', 'verify-ca', 'verify-full'] as const;

export const databaseTlsSpec = {
  DATABASE_SSL_MODE: str({
    optional: true,
    choices: DATABASE_SSL_MODES,
    help: 'TLS to Postgres; unset: as DATABASE_URL says (sslmode=...), plaintext if it says nothing',
  }),
  DATABASE_SSL_CA_FILE: pem('CA certificate'),
};

type KafkaSecurityConfig = ConfigOf<typeof kafkaSecuritySpec>;
type RegistryAccessConfig = ConfigOf<typeof registryAccessSpec>;
type DatabaseTlsConfig = ConfigOf<typeof databaseTlsSpec> & { readonly DATABASE_URL: string };

const tlsOnly = (name: keyof KafkaSecurityConfig & string): ConfigRule<KafkaSecurityConfig> => ({
  vars: [name, 'KAFKA_TLS'],
  check: (c) =>
    c[name] !== undefined && !c.KAFKA_TLS
      ? 'is set but KAFKA_TLS is not; set KAFKA_TLS=true or unset it'
      : undefined,
});

export const kafkaSecurityRules: readonly ConfigRule<KafkaSecurityConfig>[] = [
  tlsOnly('KAFKA_TLS_CA_FILE'),
  tlsOnly('KAFKA_TLS_CERT_FILE'),
  {
    vars: ['KAFKA_TLS_CERT_FILE', 'KAFKA_TLS_KEY_FILE'],
    check: (c) =>
      (c.KAFKA_TLS_CERT_FILE === undefined) !== (c.KAFKA_TLS_KEY_FILE === undefined)
        ? 'a client certificate needs its key: set both KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE, or neither'
        : undefined,
  },
  {
    vars: ['KAFKA_SASL_MECHANISM', 'KAFKA_SASL_USERNAME', 'KAFKA_SASL_PASSWORD'],
    check: (c) => {
      const m = c.KAFKA_SASL_MECHANISM;
      if (m === undefined || m === 'oauthbearer') return undefined;
      const missing = [
        c.KAFKA_SASL_USERNAME === undefined ? 'KAFKA_SASL_USERNAME' : undefined,
        c.KAFKA_SASL_PASSWORD === undefined ? 'KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE)' : undefined,
      ].filter((name) => name !== undefined);
      return missing.length > 0 ? `${m} needs ${missing.join(' and ')}` : undefined;
    },
  },
  {
    vars: ['KAFKA_SASL_MECHANISM', 'KAFKA_SASL_OAUTHBEARER_TOKEN_FILE'],
    check: (c) =>
      c.KAFKA_SASL_MECHANISM === 'oauthbearer' && c.KAFKA_SASL_OAUTHBEARER_TOKEN_FILE === undefined
        ? 'oauthbearer needs KAFKA_SASL_OAUTHBEARER_TOKEN_FILE'
        : undefined,
  },
  {
    vars: ['KAFKA_SASL_USERNAME', 'KAFKA_SASL_MECHANISM'],
    check: (c) =>
      (c.KAFKA_SASL_USERNAME !== undefined || c.KAFKA_SASL_PASSWORD !== undefined) &&
      c.KAFKA_SASL_MECHANISM === undefined
        ? `credentials are set but KAFKA_SASL_MECHANISM is not; set it to one of ${SASL_MECHANISMS.join(', ')}`
        : undefined,
  },
];

export const registryAccessRules: readonly ConfigRule<RegistryAccessConfig>[] = [
  {
    vars: ['SCHEMA_REGISTRY_USERNAME', 'SCHEMA_REGISTRY_PASSWORD'],
    check: (c) =>
      (c.SCHEMA_REGISTRY_USERNAME === undefined) !== (c.SCHEMA_REGISTRY_PASSWORD === undefined)
        ? 'basic auth needs both SCHEMA_REGISTRY_USERNAME and SCHEMA_REGISTRY_PASSWORD (or its _FILE)'
        : undefined,
  },
];

export const databaseTlsRules: readonly ConfigRule<DatabaseTlsConfig>[] = [
  {
    vars: ['DATABASE_SSL_MODE', 'DATABASE_URL'],
    check: (c) =>
      c.DATABASE_SSL_MODE !== undefined && new URL(c.DATABASE_URL).searchParams.has('sslmode')
        ? 'and sslmode in DATABASE_URL are both set; keep one of them'
        : undefined,
  },
  {
    vars: ['DATABASE_SSL_CA_FILE'],
    check: (c) =>
      c.DATABASE_SSL_CA_FILE !== undefined &&
      c.DATABASE_SSL_MODE !== 'verify-ca' &&
      c.DATABASE_SSL_MODE !== 'verify-full'
        ? 'a CA is only used to verify the server: set DATABASE_SSL_MODE=verify-full (or verify-ca)'
        : undefined,
  },
];

const text = (f: LoadedFile | undefined) => f?.text;

export function kafkaSecurity(c: KafkaSecurityConfig): KafkaSecurity {
  const tls = c.KAFKA_TLS
    ? {
        ...(c.KAFKA_TLS_CA_FILE ? { ca: c.KAFKA_TLS_CA_FILE.text } : {}),
        ...(c.KAFKA_TLS_CERT_FILE ? { cert: c.KAFKA_TLS_CERT_FILE.text } : {}),
        ...(c.KAFKA_TLS_KEY_FILE ? { key: c.KAFKA_TLS_KEY_FILE.text } : {}),
      }
    : undefined;
  const m = c.KAFKA_SASL_MECHANISM;
  const tokenFile = c.KAFKA_SASL_OAUTHBEARER_TOKEN_FILE?.path;
  const sasl: KafkaSecurity['sasl'] =
    m === 'oauthbearer' && tokenFile
      ? { mechanism: m, token: async () => (await readFile(tokenFile, 'utf8')).trim() }
      : m && m !== 'oauthbearer'
        ? { mechanism: m, username: c.KAFKA_SASL_USERNAME ?? '', password: c.KAFKA_SASL_PASSWORD ?? '' }
        : undefined;
  return { ...(tls ? { tls } : {}), ...(sasl ? { sasl } : {}) };
}

/**
 * The KAFKA_TLS* and KAFKA_SASL_* variables of `env` as the publish library and createKafka take
 * them, for an upstream app that configures itself like a Tidings service. Throws a ConfigError.
 */
export function kafkaSecurityFromEnv(env: Env): KafkaSecurity {
  return kafkaSecurity(loadConfig(kafkaSecuritySpec, env, { rules: kafkaSecurityRules }));
}

/** The SCHEMA_REGISTRY_USERNAME/PASSWORD/CA_FILE variables of `env`. Throws a ConfigError. */
export function registryAccessFromEnv(env: Env): RegistryAccess {
  return registryAccess(loadConfig(registryAccessSpec, env, { rules: registryAccessRules }));
}

export function registryAccess(c: RegistryAccessConfig): RegistryAccess {
  return {
    ...(c.SCHEMA_REGISTRY_USERNAME !== undefined && c.SCHEMA_REGISTRY_PASSWORD !== undefined
      ? { username: c.SCHEMA_REGISTRY_USERNAME, password: c.SCHEMA_REGISTRY_PASSWORD }
      : {}),
    ...(c.SCHEMA_REGISTRY_CA_FILE ? { ca: c.SCHEMA_REGISTRY_CA_FILE.text } : {}),
  };
}

/** pg's `ssl` option for DATABASE_SSL_MODE, or undefined to leave it to DATABASE_URL. */
export function databaseTls(c: ConfigOf<typeof databaseTlsSpec>): boolean | ConnectionOptions | undefined {
  const ca = text(c.DATABASE_SSL_CA_FILE);
  switch (c.DATABASE_SSL_MODE) {
    case undefined:
      return undefined;
    case 'disable':
      return false;
    // Encrypted, server not verified: libpq's meaning of `require`.
    case 'require':
      return { rejectUnauthorized: false };
    // The chain is verified, the host name is not.
    case 'verify-ca':
      return { rejectUnauthorized: true, ...(ca ? { ca } : {}), checkServerIdentity: () => undefined };
    case 'verify-full':
      return { rejectUnauthorized: true, ...(ca ? { ca } : {}) };
  }
}

/** What to tell the operator when the cluster refused us at start-up, naming what to change. */
export function kafkaConnectProblem(
  failure: ConnectFailure,
  c: KafkaSecurityConfig,
  brokers: readonly string[],
): string {
  const at = `Kafka at ${brokers.join(',')}`;
  switch (failure) {
    case 'sasl-refused':
      return `${at} refused the ${c.KAFKA_SASL_MECHANISM ?? 'SASL'} login${c.KAFKA_SASL_USERNAME ? ` of "${c.KAFKA_SASL_USERNAME}"` : ''}: check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE), and KAFKA_SASL_MECHANISM`;
    case 'tls-untrusted':
      return `${at} presented a certificate this process does not trust: set KAFKA_TLS_CA_FILE to the CA that signed the brokers' certificates`;
    case 'tls-hostname':
      return `${at} presented a certificate for another host name: list the brokers in KAFKA_BROKERS by a name their certificate carries`;
    case 'tls-client-certificate':
      return `${at} refused our client certificate: set KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE to a certificate signed by a CA the brokers trust`;
    case 'tls-mismatch':
      return c.KAFKA_TLS
        ? `${at} does not speak TLS on that port: set KAFKA_TLS=false or point KAFKA_BROKERS at the TLS listener`
        : `${at} closed the connection, as a TLS or SASL listener does with a plaintext client: set KAFKA_TLS=true (and KAFKA_SASL_* for SASL_SSL), or point KAFKA_BROKERS at the PLAINTEXT listener`;
    case 'unreachable':
      return `${at} could not be reached: check KAFKA_BROKERS and the network${c.KAFKA_TLS ? '' : ', and whether the listener wants KAFKA_TLS=true'}`;
  }
}
