import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { Registry } from 'prom-client';
import { createReputation } from '../../services/bounce/reputation.ts';

const HOUR = 3_600_000;

function setup(domains?: readonly string[]) {
  let now = Date.parse('2026-11-21T12:00:00Z');
  const alerts: { sending_domain: string; measure: string; rate: number }[] = [];
  const log = pino(
    { level: 'info' },
    {
      write: (line: string) => {
        const entry = JSON.parse(line);
        if (entry.alert === 'reputation') alerts.push(entry);
      },
    },
  );
  const registry = new Registry();
  const reputation = createReputation({
    windowMs: HOUR,
    expectedSends: 100,
    bounceAlert: 0.05,
    complaintAlert: 0.01,
    maxDomains: 2,
    ...(domains ? { domains } : {}),
    registry,
    log,
    now: () => now,
  });
  return { reputation, registry, alerts, advance: (ms: number) => (now += ms) };
}

test('hard bounces over the expected volume raise one alert at the threshold, not one per bounce', () => {
  const { reputation, alerts } = setup();
  for (let i = 0; i < 4; i++) reputation.observe('a.example', 'hard');
  assert.equal(alerts.length, 0, '4% is under 5%');
  reputation.observe('a.example', 'hard');
  reputation.observe('a.example', 'hard');
  assert.equal(reputation.rate('a.example', 'bounce'), 0.06);
  assert.deepEqual(
    alerts.map((a) => [a.sending_domain, a.measure]),
    [['a.example', 'bounce']],
  );
});

test('soft bounces do not count towards the bounce rate; complaints count towards their own', () => {
  const { reputation, alerts } = setup();
  for (let i = 0; i < 10; i++) reputation.observe('a.example', 'soft');
  assert.equal(reputation.rate('a.example', 'bounce'), 0);
  reputation.observe('a.example', 'complaint');
  assert.equal(reputation.rate('a.example', 'complaint'), 0.01);
  assert.deepEqual(
    alerts.map((a) => a.measure),
    ['complaint'],
  );
});

test('reports leave the rate as the window slides past them', () => {
  const { reputation, advance } = setup();
  for (let i = 0; i < 5; i++) reputation.observe('a.example', 'hard');
  advance(HOUR / 2);
  reputation.observe('a.example', 'hard');
  assert.equal(reputation.rate('a.example', 'bounce'), 0.06);
  advance(HOUR / 2 + 1);
  assert.equal(reputation.rate('a.example', 'bounce'), 0.01);
});

test('rates and alerts are exposed per domain, and domains past the cap share "other"', async () => {
  const { reputation, registry } = setup();
  for (const domain of ['a.example', 'b.example', 'c.example', 'd.example'])
    reputation.observe(domain, 'hard');
  for (let i = 0; i < 5; i++) reputation.observe('a.example', 'hard');
  const text = await registry.metrics();
  assert.match(text, /tidings_bounce_domain_rate\{sending_domain="a.example",measure="bounce"\} 0.06/);
  assert.match(text, /tidings_bounce_domain_alert\{sending_domain="a.example",measure="bounce"\} 1/);
  assert.match(text, /tidings_bounce_domain_reports_total\{sending_domain="other",kind="hard"\} 2/);
  assert.doesNotMatch(text, /c\.example/);
});

test('forged sending domains cannot hold the slots: a quiet domain frees its slot after the window', async () => {
  const { reputation, registry, advance } = setup();
  reputation.observe('forged-1.example', 'hard');
  reputation.observe('forged-2.example', 'hard');
  advance(HOUR + 1);
  reputation.observe('real.example', 'hard');
  const series = (await registry.getSingleMetric('tidings_bounce_domain_reports_total')?.get())?.values ?? [];
  const domains = new Set(series.map((v) => v.labels.sending_domain));
  assert.ok(domains.has('real.example'), [...domains].join(', '));
  assert.ok(!domains.has('other'));
});

test('with our sending domains configured, a report naming another domain counts as other', async () => {
  const { reputation, registry } = setup(['Tidings.Example.org']);
  reputation.observe('tidings.example.org', 'hard');
  reputation.observe('victim-brand.example', 'complaint');
  const series = (await registry.getSingleMetric('tidings_bounce_domain_reports_total')?.get())?.values ?? [];
  assert.deepEqual(series.map((v) => [v.labels.sending_domain, v.labels.kind]).sort(), [
    ['other', 'complaint'],
    ['tidings.example.org', 'hard'],
  ]);
});
