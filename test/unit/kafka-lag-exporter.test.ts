import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { createLagGauges, estimateLagSeconds } from '../../libs/kafka/lag-exporter.ts';

describe('estimateLagSeconds', () => {
  // The log end was 100 at t=0 s, 200 at t=10 s, 200 at t=20 s.
  const history = [
    { at: 0, end: 100 },
    { at: 10_000, end: 200 },
    { at: 20_000, end: 200 },
  ];

  test('a caught-up group is 0 s behind', () => {
    assert.equal(estimateLagSeconds(history, 200, 30_000), 0);
  });

  test('the time the log end passed the committed offset is interpolated between samples', () => {
    // Offset 149 was written when the end went 149 -> 150: half-way through the 0-10 s interval.
    assert.equal(estimateLagSeconds(history, 149, 30_000), 25);
  });

  test('a committed offset older than the history is at least as old as the oldest sample', () => {
    assert.equal(estimateLagSeconds(history, 40, 30_000), 30);
  });

  test('without history there is no estimate', () => {
    assert.equal(estimateLagSeconds([], 40, 30_000), undefined);
  });
});

test("gauges carry kafka_exporter's names and labels, and drop partitions no longer read", async () => {
  const registry = new Registry();
  const gauges = createLagGauges(registry);
  gauges.record(
    [
      { group: 'router', topic: 'eqiad.notify.event', partition: 0, committed: 5, end: 5 },
      { group: 'router', topic: 'eqiad.notify.event', partition: 1, committed: null, end: 3 },
    ],
    0,
  );
  gauges.record(
    [{ group: 'router', topic: 'eqiad.notify.event', partition: 0, committed: 5, end: 9 }],
    10_000,
  );
  const text = await registry.metrics();
  assert.match(
    text,
    /^kafka_consumergroup_lag\{consumergroup="router",topic="eqiad\.notify\.event",partition="0"\} 4$/m,
  );
  // Offset 5 was written in the 0-10 s interval (end 5 -> 9): a quarter of the way, at 2.5 s.
  assert.match(
    text,
    /^kafka_consumergroup_lag_seconds\{consumergroup="router",topic="eqiad\.notify\.event",partition="0"\} 7\.5$/m,
  );
  assert.doesNotMatch(text, /partition="1"/);
});
