import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Counter, Histogram, Registry } from 'prom-client';
import { HotHistogram, tallied } from '../../libs/metrics/hot-path.ts';

const options = { name: 'x_seconds', help: 'Time per record', buckets: [0.001, 0.01, 0.1, 1] };

test('scrapes exactly as prom-client scrapes a Histogram given the same observations', async () => {
  const reference = new Registry();
  reference.setDefaultLabels({ service: 'router' });
  const histogram = new Histogram({ ...options, labelNames: ['group'], registers: [reference] });
  const hot = new Registry();
  hot.setDefaultLabels({ service: 'router' });
  const fast = HotHistogram.on(hot, { ...options, labelName: 'group' });
  const children = { a: fast.child('a'), b: fast.child('b') };
  // On a bound, between bounds, above the last one, and a series with one observation.
  for (const [group, value] of [
    ['a', 0.001],
    ['a', 0.0005],
    ['a', 0.05],
    ['a', 7],
    ['b', 0.2],
    ['a', 0.01],
  ] as const) {
    histogram.observe({ group }, value);
    children[group].observe(value);
  }
  assert.equal(await hot.metrics(), await reference.metrics());
  // Exemplars are the one thing it does not keep.
  const withoutExemplars = (json: unknown) =>
    JSON.parse(JSON.stringify(json, (key, value: unknown) => (key === 'exemplar' ? undefined : value)));
  assert.deepEqual(await hot.getMetricsAsJSON(), withoutExemplars(await reference.getMetricsAsJSON()));
});

test('one instance per registry and name, so runtimes sharing a registry share the series', () => {
  const registry = new Registry();
  const first = HotHistogram.on(registry, { ...options, labelName: 'group' });
  assert.equal(HotHistogram.on(registry, { ...options, labelName: 'group' }), first);
});

test('a tallied counter scrapes as a prom-client Counter incremented the same times', async () => {
  const config = { name: 'y_total', help: 'Decisions', labelNames: ['channel', 'reason'] as const };
  const reference = new Registry();
  const counter = new Counter({ ...config, registers: [reference] });
  const registry = new Registry();
  const fast = tallied(registry, config);
  const incs = [
    ['web', ''],
    ['email', 'channel-off'],
    ['web', ''],
    ['push', 'unknown-recipient'],
  ] as const;
  for (const [channel, reason] of incs) {
    counter.inc({ channel, reason });
    fast.inc(channel, reason);
  }
  assert.equal(await registry.metrics(), await reference.metrics());
  // Tallies are added once: a second scrape, and increments after it, add up as they should.
  assert.equal(await registry.metrics(), await reference.metrics());
  counter.inc({ channel: 'web', reason: '' });
  fast.inc('web', '');
  assert.equal(await registry.metrics(), await reference.metrics());
});
