import assert from 'node:assert/strict';
import { test } from 'node:test';
import { commonRules, commonSpec, LOCAL_BROKERS } from '../../libs/config/common.ts';
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
