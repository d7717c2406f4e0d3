import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { resolveContext } from '../../cli/context.ts';
import { render } from '../../cli/output.ts';
import { LOCAL_BROKERS } from '../../libs/config/common.ts';

const root = join(import.meta.dirname, '..', '..');

/** Runs the CLI against ports where nothing listens, so a test notices any attempt to connect. */
function tidings(...args: string[]) {
  const { TIDINGS_DC: _dc, ...env } = process.env;
  return spawnSync(
    process.execPath,
    [
      'cli/tidings.ts',
      '--brokers',
      '127.0.0.1:2',
      '--registry',
      'http://127.0.0.1:2/apis/ccompat/v7',
      ...args,
    ],
    { cwd: root, encoding: 'utf8', env },
  );
}

describe('output', () => {
  const rows = [
    { topic: 'eqiad.notify.user', action: 'alter', changes: ['a: 1 -> 2', 'b: x -> y'] },
    { topic: 'eqiad.notify.event', action: 'ok', changes: [] },
  ];

  test('table aligns columns under upper-case headers', () => {
    assert.equal(
      render('table', rows),
      [
        'TOPIC               ACTION  CHANGES',
        'eqiad.notify.user   alter   a: 1 -> 2; b: x -> y',
        'eqiad.notify.event  ok',
        '',
      ].join('\n'),
    );
  });

  test('csv quotes fields with commas and quotes', () => {
    assert.equal(render('csv', [{ a: 'x,y', b: 'say "hi"', c: null }]), 'a,b,c\n"x,y","say ""hi""",\n');
  });

  test('json keeps values as they are', () => {
    assert.deepEqual(JSON.parse(render('json', rows)), rows);
  });

  test('an ESC, CSI or bidi control from a dead letter never reaches the terminal raw', () => {
    // What an attacker puts in a mail header: clear the screen and write something else.
    const hostile = {
      key: 'k',
      error_message: 'bad \u001b[2J\u001b]0;pwned\u0007 \u009b31m \u202eevil\r\nforged line',
    };
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the characters that must not get through.
    const controls = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e]/;
    for (const format of ['table', 'csv'] as const) {
      const text = render(format, [hostile]).replace(/\n$/, '').replaceAll('\n', '');
      assert.doesNotMatch(text, controls, format);
      assert.match(text, /bad \ufffd\[2J/);
    }
    const json = render('json', [hostile]);
    assert.doesNotMatch(json.replaceAll('\n', ''), controls);
    assert.deepEqual(JSON.parse(json), [hostile], 'json keeps the value exact, escaped');
  });
});

describe('context', () => {
  test('brokers come from --brokers, then KAFKA_BROKERS_<DC>, then the built-in map', () => {
    const base = { dc: 'codfw', output: 'table' as const };
    assert.deepEqual(resolveContext(base, {}).brokers, LOCAL_BROKERS.codfw);
    assert.deepEqual(resolveContext(base, { KAFKA_BROKERS_CODFW: 'k1:9092, k2:9092' }).brokers, [
      'k1:9092',
      'k2:9092',
    ]);
    assert.deepEqual(
      resolveContext({ ...base, brokers: 'b:1' }, { KAFKA_BROKERS_CODFW: 'k1:9092' }).brokers,
      ['b:1'],
    );
  });

  test('a datacenter without brokers is a usage error', () => {
    assert.throws(
      () => resolveContext({ dc: 'ulsfo', output: 'table' }, {}),
      (error: { exitCode?: number; message: string }) =>
        error.exitCode === 2 && /KAFKA_BROKERS_ULSFO/.test(error.message),
    );
  });
});

describe('exit codes', () => {
  test('usage errors exit 2', () => {
    assert.equal(tidings('no-such-command').status, 2);
    assert.equal(tidings('-o', 'xml', 'schemas', 'list').status, 2);
    assert.equal(tidings('publish', 'notify.sms', '--file', 'x.json').status, 2);
    assert.equal(tidings('--dc', 'Bad_DC', 'topics', 'plan').status, 2);
    assert.equal(tidings('topics', 'plan', '--replication-factor', 'zero').status, 2);
    assert.equal(tidings('publish', 'notify.event', '--file', '/nonexistent.json').status, 2);
  });

  test('an unreachable registry is a failure (1) with a clear message', () => {
    const run = tidings('schemas', 'list');
    assert.equal(run.status, 1);
    assert.match(
      run.stderr,
      /schema registry at http:\/\/127\.0\.0\.1:2\/apis\/ccompat\/v7 is unreachable: connect ECONNREFUSED/,
    );
  });

  test('publish refuses an invalid record naming the field, before contacting Kafka or the registry', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tidings-cli-'));
    try {
      const file = join(dir, 'event.json');
      writeFileSync(
        file,
        JSON.stringify({ event_id: 'e1', type: 't', category: 'c', recipients: ['u1', 2] }),
      );
      const run = tidings('publish', 'notify.event', '--file', file);
      assert.equal(run.status, 1);
      assert.match(run.stderr, /recipients\[1\]: expected string, got number 2/);
      assert.doesNotMatch(run.stderr, /unreachable|ECONNREFUSED/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
