import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { createOperatorAlarm } from '../../services/email/operator-alarm.ts';

function captured() {
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { log, lines };
}

const auth = {
  problem: 'auth',
  fix: 'check the SMTP user and password',
  detail: 'Invalid login: 535',
} as const;

test('a misconfiguration is logged once per period with what to fix, and flips the gauge and readiness', () => {
  const { log, lines } = captured();
  let now = 0;
  const gauge: string[] = [];
  const alarm = createOperatorAlarm({
    log,
    logIntervalMs: 60_000,
    target: 'smtp://relay:587',
    onChange: (problem, active) => gauge.push(`${problem}=${active ? 1 : 0}`),
    now: () => now,
  });
  for (let i = 0; i < 100; i++) alarm.raise(auth);
  now = 59_999;
  alarm.raise(auth);
  assert.equal(lines.filter((l) => l.msg.includes('check the SMTP user and password')).length, 1);
  now = 60_000;
  alarm.raise(auth);
  assert.equal(lines.filter((l) => l.msg.includes('check the SMTP user and password')).length, 2);
  assert.deepEqual(alarm.readiness(), {
    ok: false,
    detail: 'SMTP misconfiguration (auth): check the SMTP user and password',
  });

  alarm.clear();
  assert.equal(alarm.readiness().ok, true);
  assert.deepEqual(gauge, ['auth=1', 'auth=0']);
  assert.match(lines.at(-1)?.msg ?? '', /resolved/);
});

test('a different problem is logged at once', () => {
  const { log, lines } = captured();
  const alarm = createOperatorAlarm({
    log,
    logIntervalMs: 60_000,
    target: 't',
    onChange: () => undefined,
    now: () => 0,
  });
  alarm.raise(auth);
  alarm.raise({ problem: 'tls', fix: 'check TLS', detail: 'd' });
  assert.equal(lines.length, 2);
});
