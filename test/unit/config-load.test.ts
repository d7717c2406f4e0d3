import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDuration } from '../../libs/config/duration.ts';
import { ConfigError, describeConfig, loadConfig } from '../../libs/config/load.ts';
import { bool, duration, durations, int, list, port, str, url } from '../../libs/config/vars.ts';

const spec = {
  TIDINGS_DC: str({
    default: 'eqiad',
    pattern: /^[a-z][a-z0-9-]*$/,
    help: 'datacenter this process runs in',
  }),
  MODE: str({ choices: ['fast', 'safe'], default: 'safe' }),
  HTTP_PORT: port({ default: 9100 }),
  DLQ_MAX: int({ min: 0 }),
  BROKERS: list(),
  RETRY_DELAYS: durations({ default: [1000] }),
  ENABLED: bool({ optional: true }),
  REGISTRY: url({ protocols: ['http', 'https'], optional: true }),
  TIMEOUT: duration({ default: 25_000 }),
  API_TOKEN: str({ secret: true, optional: true }),
  DATABASE_URL: url({
    protocols: ['postgres'],
    secret: true,
    default: 'postgres://postgres@127.0.0.1/tidings',
  }),
};

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

function problemsOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err;
  }
  assert.fail('expected a ConfigError');
}

test('loads each kind into typed values, with defaults for what is unset', () => {
  const cfg = loadConfig(spec, {
    DLQ_MAX: '0',
    BROKERS: ' a:1, b:2 ,,',
    RETRY_DELAYS: '500ms,5s,2m,1h,250',
    ENABLED: 'Yes',
    REGISTRY: 'https://registry.example.org/apis',
    TIMEOUT: '2m',
    HTTP_PORT: '',
  });
  // Compile-time: the config type follows the spec, so callers never cast.
  const types: [
    Same<typeof cfg.TIDINGS_DC, string>,
    Same<typeof cfg.MODE, 'fast' | 'safe'>,
    Same<typeof cfg.HTTP_PORT, number>,
    Same<typeof cfg.BROKERS, readonly string[]>,
    Same<typeof cfg.RETRY_DELAYS, readonly number[]>,
    Same<typeof cfg.ENABLED, boolean | undefined>,
    Same<typeof cfg.REGISTRY, string | undefined>,
    Same<typeof cfg.API_TOKEN, string | undefined>,
  ] = [true, true, true, true, true, true, true, true];
  assert.equal(types.length, 8);

  assert.deepEqual(
    { ...cfg },
    {
      TIDINGS_DC: 'eqiad',
      MODE: 'safe',
      HTTP_PORT: 9100,
      DLQ_MAX: 0,
      BROKERS: ['a:1', 'b:2'],
      RETRY_DELAYS: [500, 5000, 120_000, 3_600_000, 250],
      ENABLED: true,
      REGISTRY: 'https://registry.example.org/apis',
      TIMEOUT: 120_000,
      API_TOKEN: undefined,
      DATABASE_URL: 'postgres://postgres@127.0.0.1/tidings',
    },
  );
});

test('accepts every boolean spelling', () => {
  const flag = { F: bool() };
  for (const [raw, value] of [
    ['true', true],
    ['1', true],
    ['yes', true],
    ['TRUE', true],
    ['false', false],
    ['0', false],
    ['no', false],
  ] as const) {
    assert.equal(loadConfig(flag, { F: raw }).F, value, raw);
  }
});

test('parses durations with units or as plain milliseconds, and rejects anything else', () => {
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('5s'), 5000);
  assert.equal(parseDuration('2m'), 120_000);
  assert.equal(parseDuration('1h'), 3_600_000);
  assert.equal(parseDuration('1500'), 1500);
  for (const bad of ['', '5 s', '1.5s', '-5s', '5d', 's', '99999999999999999h']) {
    assert.equal(parseDuration(bad), undefined, bad);
  }
});

test('collects every problem into one ConfigError naming the variable, the value and the fix', () => {
  const err = problemsOf(() =>
    loadConfig(spec, {
      TIDINGS_DC: 'EQIAD',
      MODE: 'reckless',
      HTTP_PORT: 'abc',
      BROKERS: ' , ',
      RETRY_DELAYS: '5s,soon',
      ENABLED: 'maybe',
      REGISTRY: 'ftp://registry',
      TIMEOUT: '5 minutes',
    }),
  );
  assert.deepEqual(
    err.problems.map((p) => p.variable),
    [
      'TIDINGS_DC',
      'MODE',
      'HTTP_PORT',
      'DLQ_MAX',
      'BROKERS',
      'RETRY_DELAYS',
      'ENABLED',
      'REGISTRY',
      'TIMEOUT',
    ],
  );
  const lines = err.message.split('\n');
  assert.match(lines[0] ?? '', /9 problems/);
  const expected = [
    /^TIDINGS_DC: "EQIAD" does not match .*; set .*\(datacenter this process runs in\)$/,
    /^MODE: "reckless" is not an accepted value; set one of fast, safe$/,
    /^HTTP_PORT: "abc" is not a port; set an integer 1-65535$/,
    /^DLQ_MAX: not set; set an integer >= 0$/,
    /^BROKERS: "," has no items; set a comma-separated list$/,
    /^RETRY_DELAYS: "5s,soon" has item "soon" that is not a duration; set a comma-separated list of durations/,
    /^ENABLED: "maybe" is not a boolean; set true or false/,
    /^REGISTRY: "ftp:\/\/registry" is not a http or https URL; set a http or https URL$/,
    /^TIMEOUT: "5 minutes" is not a duration; set a duration like 500ms/,
  ];
  for (const [i, pattern] of expected.entries()) assert.match(err.problems[i]?.message ?? '', pattern);
  for (const problem of err.problems) assert.ok(err.message.includes(problem.message));
});

test('reports range problems of integers and durations', () => {
  const ranged = {
    WORKERS: int({ min: 1, max: 8 }),
    BATCH: int({ max: 500 }),
    WINDOW: duration({ min: 100, max: 60_000 }),
    DELAYS: durations({ min: 1 }),
  };
  const err = problemsOf(() =>
    loadConfig(ranged, { WORKERS: '0', BATCH: '501', WINDOW: '2m', DELAYS: '1s,0' }),
  );
  assert.deepEqual(
    err.problems.map((p) => p.message),
    [
      'WORKERS: "0" is below the minimum 1; set an integer 1-8',
      'BATCH: "501" is above the maximum 500; set an integer <= 500',
      'WINDOW: "2m" is above the maximum 60000ms; set a duration 100ms-60000ms like 500ms, 5s, 2m, 1h (a plain number is ms)',
      'DELAYS: "1s,0" has item "0" that is below the minimum 1ms; set a comma-separated list of durations >= 1ms like 500ms, 5s, 2m, 1h (a plain number is ms)',
    ],
  );
  assert.equal(
    problemsOf(() => loadConfig(ranged, { WORKERS: '2.5', BATCH: '1', WINDOW: '1s', DELAYS: '1s' }))
      .problems[0]?.message,
    'WORKERS: "2.5" is not an integer; set an integer 1-8',
  );
});

test('masks secret values in errors', () => {
  const err = problemsOf(() =>
    loadConfig(
      {
        API_TOKEN: str({ secret: true, pattern: /^tok_/ }),
        DATABASE_URL: url({ protocols: ['postgres'], secret: true }),
      },
      { API_TOKEN: 'hunter2-super-secret', DATABASE_URL: 'mysql://app:pa55word@db.example.org/app?sslkey=k' },
    ),
  );
  assert.ok(!err.message.includes('hunter2'), err.message);
  assert.ok(!err.message.includes('pa55word'), err.message);
  assert.ok(!err.message.includes('sslkey'), err.message);
  assert.match(err.message, /API_TOKEN: "\*\*\*" does not match/);
  assert.match(
    err.message,
    /DATABASE_URL: "mysql:\/\/app:\*\*\*@db\.example\.org\/app\?\*\*\*" is not a postgres URL/,
  );
});

test('describeConfig shows the effective config with secrets masked', () => {
  const cfg = loadConfig(spec, {
    DLQ_MAX: '3',
    BROKERS: 'a:1',
    API_TOKEN: 'tok_live_123',
    DATABASE_URL: 'postgres://app:pa55word@db.example.org:5432/tidings',
  });
  const described = describeConfig(spec, cfg);
  assert.equal(described.API_TOKEN, '***');
  assert.equal(described.DATABASE_URL, 'postgres://app:***@db.example.org:5432/tidings');
  assert.equal(described.ENABLED, null);
  assert.deepEqual(described.BROKERS, ['a:1']);
  assert.equal(described.HTTP_PORT, 9100);
  assert.ok(!JSON.stringify(described).includes('pa55word'));
  assert.ok(!JSON.stringify(described).includes('tok_live'));
});

test('rules check across variables once those variables loaded', () => {
  const pair = { LOW: int(), HIGH: int() };
  const rules = [
    {
      vars: ['HIGH', 'LOW'] as const,
      check: (c: { LOW: number; HIGH: number }) => (c.HIGH > c.LOW ? undefined : 'must be above LOW'),
    },
  ];
  assert.deepEqual(problemsOf(() => loadConfig(pair, { LOW: '5', HIGH: '3' }, { rules })).problems, [
    { variable: 'HIGH', message: 'HIGH: must be above LOW' },
  ]);
  // LOW is broken: only its own problem is reported, the rule does not run on a missing value.
  assert.deepEqual(
    problemsOf(() => loadConfig(pair, { LOW: 'x', HIGH: '3' }, { rules })).problems.map((p) => p.variable),
    ['LOW'],
  );
  assert.deepEqual(loadConfig(pair, { LOW: '1', HIGH: '3' }, { rules }), { LOW: 1, HIGH: 3 });
});
