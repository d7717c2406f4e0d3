import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { commonRules, commonSpec, LOCAL_BROKERS } from '../../libs/config/common.ts';
import { databaseTls, kafkaSecurity, registryAccess } from '../../libs/config/connectivity.ts';
import { ConfigError, describeConfig, type Env, loadConfig } from '../../libs/config/load.ts';

function load(env: Env, httpPort = 9101) {
  return loadConfig(commonSpec(env, { httpPort }), env, { rules: commonRules });
}

function problems(env: Env): string[] {
  try {
    load(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems.map((p) => p.message);
  }
  assert.fail('expected a ConfigError');
}

test('an empty environment runs against the local stack in eqiad', () => {
  const cfg = load({});
  assert.equal(cfg.TIDINGS_DC, 'eqiad');
  assert.deepEqual(cfg.TIDINGS_DCS, ['eqiad', 'codfw']);
  assert.deepEqual(cfg.KAFKA_BROKERS, ['127.0.0.1:9092']);
  assert.equal(cfg.SCHEMA_REGISTRY_URL, 'http://127.0.0.1:8081/apis/ccompat/v7');
  assert.equal(cfg.DATABASE_URL, 'postgres://postgres@127.0.0.1:5432/tidings');
  assert.equal(cfg.LOG_LEVEL, 'info');
  assert.equal(cfg.HTTP_PORT, 9101, 'each service passes its own ops port');
  assert.equal(cfg.SHUTDOWN_TIMEOUT, 25_000);
});

test('the default brokers follow TIDINGS_DC, and an explicit KAFKA_BROKERS wins', () => {
  assert.deepEqual(load({ TIDINGS_DC: 'codfw' }).KAFKA_BROKERS, LOCAL_BROKERS.codfw);
  assert.deepEqual(load({ TIDINGS_DC: 'codfw' }).KAFKA_BROKERS, ['127.0.0.1:9192']);
  assert.deepEqual(load({ TIDINGS_DC: 'codfw', KAFKA_BROKERS: 'kafka1:9092,kafka2:9092' }).KAFKA_BROKERS, [
    'kafka1:9092',
    'kafka2:9092',
  ]);
});

test('a datacenter without local defaults must name its brokers and be in TIDINGS_DCS', () => {
  assert.deepEqual(problems({ TIDINGS_DC: 'ulsfo' }), [
    'KAFKA_BROKERS: not set; set a comma-separated list of host:port (Kafka cluster of this datacenter; "ulsfo" has no default)',
    'TIDINGS_DCS: "eqiad,codfw" does not include TIDINGS_DC "ulsfo"; add ulsfo to it or change TIDINGS_DC',
  ]);
  const cfg = load({ TIDINGS_DC: 'ulsfo', TIDINGS_DCS: 'ulsfo,eqiad', KAFKA_BROKERS: 'k1:9092' });
  assert.deepEqual([cfg.TIDINGS_DC, cfg.KAFKA_BROKERS], ['ulsfo', ['k1:9092']]);
});

test('reports every bad common variable at once', () => {
  const found = problems({
    TIDINGS_DC: 'Eqiad',
    KAFKA_BROKERS: 'localhost',
    SCHEMA_REGISTRY_URL: 'registry:8081',
    DATABASE_URL: 'mysql://app:pa55@db/x',
    LOG_LEVEL: 'verbose',
    HTTP_PORT: '70000',
    SHUTDOWN_TIMEOUT: '0',
  });
  assert.deepEqual(
    found.map((m) => m.split(':')[0]),
    [
      'TIDINGS_DC',
      'KAFKA_BROKERS',
      'SCHEMA_REGISTRY_URL',
      'DATABASE_URL',
      'LOG_LEVEL',
      'HTTP_PORT',
      'SHUTDOWN_TIMEOUT',
    ],
  );
  assert.ok(!found.join('\n').includes('pa55'), 'the database password never shows');
});

test('describeConfig hides the database password', () => {
  const env = { DATABASE_URL: 'postgres://router:s3cret@db.example.org:5432/tidings' };
  const described = describeConfig(commonSpec(env, { httpPort: 9101 }), load(env));
  assert.equal(described.DATABASE_URL, 'postgres://router:***@db.example.org:5432/tidings');
  assert.equal(described.TIDINGS_DC, 'eqiad');
});

// The connectivity variables (libs/config/connectivity.ts): what a consistent set turns into
// (KafkaJS security, registry access, pg's ssl option), and the inconsistent sets refused.

const dir = mkdtempSync(join(tmpdir(), 'tidings-connectivity-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const pem = (name: string, label = 'CERTIFICATE') => {
  const path = join(dir, name);
  writeFileSync(path, `-----BEGIN ${label}-----\n${name}\n-----END ${label}-----\n`);
  return path;
};
const CA = pem('ca.crt');
const CERT = pem('client.crt');
const KEY = pem('client.key', 'PRIVATE KEY');

test('nothing set: plaintext Kafka, an anonymous registry, TLS to Postgres as DATABASE_URL says', () => {
  const c = load({});
  assert.deepEqual(kafkaSecurity(c), {});
  assert.deepEqual(registryAccess(c), {});
  assert.equal(databaseTls(c), undefined);
});

test('SASL_SSL with SCRAM: the CA and the credentials reach the Kafka client', () => {
  const password = join(dir, 'password');
  writeFileSync(password, 'pw\n');
  const c = load({
    KAFKA_TLS: 'true',
    KAFKA_TLS_CA_FILE: CA,
    KAFKA_SASL_MECHANISM: 'scram-sha-256',
    KAFKA_SASL_USERNAME: 'svc',
    KAFKA_SASL_PASSWORD_FILE: password,
  });
  assert.deepEqual(kafkaSecurity(c), {
    tls: { ca: `-----BEGIN CERTIFICATE-----\nca.crt\n-----END CERTIFICATE-----\n` },
    sasl: { mechanism: 'scram-sha-256', username: 'svc', password: 'pw' },
  });
});

test('mTLS: the client certificate and key reach the Kafka client', () => {
  const security = kafkaSecurity(
    load({ KAFKA_TLS: 'true', KAFKA_TLS_CERT_FILE: CERT, KAFKA_TLS_KEY_FILE: KEY }),
  );
  assert.match(security.tls?.cert ?? '', /client\.crt/);
  assert.match(security.tls?.key ?? '', /client\.key/);
  assert.equal(security.tls?.ca, undefined, "no CA file: the system's CAs");
  assert.equal(security.sasl, undefined);
});

test('OAUTHBEARER reads the token file again at every login, so a rotated token is used', async () => {
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, 'first\n');
  const { sasl } = kafkaSecurity(
    load({
      KAFKA_TLS: 'true',
      KAFKA_SASL_MECHANISM: 'oauthbearer',
      KAFKA_SASL_OAUTHBEARER_TOKEN_FILE: tokenFile,
    }),
  );
  assert.equal(sasl?.mechanism, 'oauthbearer');
  assert.ok(sasl?.mechanism === 'oauthbearer');
  assert.equal(await sasl.token(), 'first');
  writeFileSync(tokenFile, 'second\n');
  assert.equal(await sasl.token(), 'second');
});

test('inconsistent Kafka settings are refused, each saying what to change', () => {
  assert.deepEqual(problems({ KAFKA_TLS_CA_FILE: CA, KAFKA_TLS_CERT_FILE: CERT }), [
    'KAFKA_TLS_CA_FILE: is set but KAFKA_TLS is not; set KAFKA_TLS=true or unset it',
    'KAFKA_TLS_CERT_FILE: is set but KAFKA_TLS is not; set KAFKA_TLS=true or unset it',
    'KAFKA_TLS_CERT_FILE: a client certificate needs its key: set both KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE, or neither',
  ]);
  assert.deepEqual(problems({ KAFKA_SASL_MECHANISM: 'scram-sha-512' }), [
    'KAFKA_SASL_MECHANISM: scram-sha-512 needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE)',
  ]);
  assert.deepEqual(problems({ KAFKA_SASL_MECHANISM: 'oauthbearer' }), [
    'KAFKA_SASL_MECHANISM: oauthbearer needs KAFKA_SASL_OAUTHBEARER_TOKEN_FILE',
  ]);
  assert.deepEqual(problems({ KAFKA_SASL_USERNAME: 'svc', KAFKA_SASL_PASSWORD: 'pw' }), [
    'KAFKA_SASL_USERNAME: credentials are set but KAFKA_SASL_MECHANISM is not; set it to one of plain, scram-sha-256, scram-sha-512, oauthbearer',
  ]);
  assert.match(
    problems({ KAFKA_SASL_MECHANISM: 'gssapi' })[0] ?? '',
    /^KAFKA_SASL_MECHANISM: "gssapi" is not an accepted value; set one of plain, scram-sha-256, scram-sha-512, oauthbearer/,
  );
});

test('the registry: basic auth needs both halves; the CA is read at start-up', () => {
  assert.deepEqual(
    registryAccess(
      load({ SCHEMA_REGISTRY_USERNAME: 'u', SCHEMA_REGISTRY_PASSWORD: 'p', SCHEMA_REGISTRY_CA_FILE: CA }),
    ),
    {
      username: 'u',
      password: 'p',
      ca: `-----BEGIN CERTIFICATE-----\nca.crt\n-----END CERTIFICATE-----\n`,
    },
  );
  assert.deepEqual(problems({ SCHEMA_REGISTRY_USERNAME: 'u' }), [
    'SCHEMA_REGISTRY_USERNAME: basic auth needs both SCHEMA_REGISTRY_USERNAME and SCHEMA_REGISTRY_PASSWORD (or its _FILE)',
  ]);
});

test('Postgres: each sslmode means what it means to libpq', () => {
  assert.equal(databaseTls(load({ DATABASE_SSL_MODE: 'disable' })), false);
  assert.deepEqual(databaseTls(load({ DATABASE_SSL_MODE: 'require' })), { rejectUnauthorized: false });
  const full = databaseTls(load({ DATABASE_SSL_MODE: 'verify-full', DATABASE_SSL_CA_FILE: CA }));
  assert.deepEqual(full, {
    rejectUnauthorized: true,
    ca: `-----BEGIN CERTIFICATE-----\nca.crt\n-----END CERTIFICATE-----\n`,
  });
  const ca = databaseTls(load({ DATABASE_SSL_MODE: 'verify-ca', DATABASE_SSL_CA_FILE: CA }));
  assert.ok(typeof ca === 'object' && ca.rejectUnauthorized === true);
  assert.equal(
    ca.checkServerIdentity?.('db.internal', {} as never),
    undefined,
    'verify-ca checks no host name',
  );
});

test('Postgres: sslmode set twice, or a CA nothing verifies with, is refused', () => {
  assert.deepEqual(
    problems({
      DATABASE_SSL_MODE: 'require',
      DATABASE_URL: 'postgres://db.internal/tidings?sslmode=disable',
    }),
    ['DATABASE_SSL_MODE: and sslmode in DATABASE_URL are both set; keep one of them'],
  );
  assert.deepEqual(problems({ DATABASE_SSL_MODE: 'require', DATABASE_SSL_CA_FILE: CA }), [
    'DATABASE_SSL_CA_FILE: a CA is only used to verify the server: set DATABASE_SSL_MODE=verify-full (or verify-ca)',
  ]);
});
