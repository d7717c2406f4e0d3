import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { createConsumptionHold } from '../../services/email/consumption-hold.ts';

function hold(probeIntervalMs = 10) {
  const events: string[] = [];
  const h = createConsumptionHold({
    pause: (reason) => events.push(`pause ${reason}`),
    resume: (reason) => events.push(`resume ${reason}`),
    probeIntervalMs,
    log: pino({ level: 'silent' }),
    onChange: () => undefined,
  });
  return { h, events };
}

test('a reason pauses once however often it is met, and resumes at its time', async () => {
  const { h, events } = hold();
  h.until('send-budget', Date.now() + 30);
  h.until('send-budget', Date.now() + 10);
  assert.deepEqual(events, ['pause send-budget']);
  await sleep(60);
  assert.deepEqual(events, ['pause send-budget', 'resume send-budget']);
  assert.equal(h.isHeld('send-budget'), false);
});

test('a probe runs each interval until it succeeds, then consumption resumes', async () => {
  const { h, events } = hold();
  let probes = 0;
  const probe = async () => ++probes >= 3;
  h.untilProbe('smtp-misconfigured', probe);
  h.untilProbe('smtp-misconfigured', probe);
  await sleep(100);
  assert.equal(probes, 3);
  assert.deepEqual(events, ['pause smtp-misconfigured', 'resume smtp-misconfigured']);
  h.close();
});
