import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Histogram, Registry } from 'prom-client';
import { HotHistogram } from '../../libs/metrics/hot-histogram.ts';

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
