import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';

const root = join(import.meta.dirname, '..', '..');

/** Runs the CLI against ports where nothing listens: usage errors must come before any connection. */
function tidings(...args: string[]) {
  const { TIDINGS_DC: _dc, ...env } = process.env;
  return spawnSync(process.execPath, ['cli/tidings.ts', '--brokers', '127.0.0.1:2', ...args], {
    cwd: root,
    encoding: 'utf8',
    env,
  });
}

test('replay refuses a time without a zone before touching the cluster, with exit 2', () => {
  const run = tidings('replay', '--group', 'g', '--since', '2026-11-21T10:00:00');
  assert.equal(run.status, 2);
  assert.match(
    run.stderr,
    /--since: "2026-11-21T10:00:00" has no time zone: add Z for UTC or an offset like \+01:00/,
  );
  assert.doesNotMatch(run.stderr, /ECONNREFUSED|Connection/);
});

test('replay refuses to go back further than the dedup retention, says why, with exit 2', () => {
  const run = tidings('replay', '--group', 'g', '--since', '240h');
  assert.equal(run.status, 2);
  assert.match(
    run.stderr,
    /refusing to replay from .*, 10 days back: the services deduplicate only 8 days of records/,
  );
  assert.match(run.stderr, /the earliest allowed is \d{4}-/);
  assert.doesNotMatch(run.stderr, /ECONNREFUSED|Connection/);
  // Within the limit the plan goes on (and here fails to reach the cluster, which is the point).
  assert.doesNotMatch(tidings('replay', '--group', 'g', '--since', '144h').stderr, /refusing to replay/);
});

test('operations commands without their required choices are usage errors (exit 2)', () => {
  const cases: [string[], RegExp][] = [
    [['replay', '--since', '2h'], /--group is required/],
    [['replay', '--group', 'g'], /--since is required/],
    [['drop', '--group', 'g'], /exactly one of --until <time> or --to-latest/],
    [
      ['drop', '--group', 'g', '--until', '1h', '--to-latest'],
      /exactly one of --until <time> or --to-latest/,
    ],
    [['drop', '--topic', 't'], /exactly one of --before <time> or --before-offset/],
    [['drop', '--topic', 't', '--before-offset', '4'], /--before-offset needs --partition/],
    [['drop', '--topic', 't', '--before', 'yesterday'], /neither an ISO-8601 time/],
    [['lag', '--interval', 'soon'], /--interval "soon" is not a duration/],
    [['lag', '--samples', '0'], /--samples must be a positive integer/],
    [['tail', 'notify.event', '--limit', '0'], /--limit must be a positive integer/],
    [['dlq', 'show', 'notify.event'], /--service <service>' not specified/],
  ];
  for (const [args, message] of cases) {
    const run = tidings(...args);
    assert.equal(run.status, 2, `${args.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, message, args.join(' '));
  }
});
