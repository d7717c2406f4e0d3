import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createOffsetTracker } from '../../libs/kafka/offset-tracker.ts';

test('commits only up to the lowest unfinished offset', () => {
  const t = createOffsetTracker<string>();
  for (const o of [10n, 11n, 12n, 13n]) t.begin(o, `r${o}`);
  t.finish(11n);
  t.finish(13n);
  assert.equal(t.advance(), null, 'offset 10 is unfinished: nothing may be committed');
  t.finish(10n);
  assert.deepEqual(t.advance(), { offset: 12n, data: 'r11' }, 'commit stops before unfinished 12');
  t.finish(12n);
  assert.deepEqual(t.advance(), { offset: 14n, data: 'r13' });
  assert.equal(t.inFlight(), 0);
  assert.equal(t.advance(), null, 'nothing moved since the last advance');
});

test('refuses offsets out of order and finishes of unknown offsets', () => {
  const t = createOffsetTracker<null>();
  t.begin(5n, null);
  assert.throws(() => t.begin(5n, null), /must increase/);
  assert.throws(() => t.finish(6n), /never began/);
});

test('stays correct across many records (queue compaction)', () => {
  const t = createOffsetTracker<number>();
  for (let i = 0; i < 5000; i++) t.begin(BigInt(i), i);
  for (let i = 4999; i >= 1; i--) t.finish(BigInt(i));
  assert.equal(t.advance(), null);
  t.finish(0n);
  assert.deepEqual(t.advance(), { offset: 5000n, data: 4999 });
  t.begin(5000n, 5000);
  t.finish(5000n);
  assert.deepEqual(t.advance(), { offset: 5001n, data: 5000 });
});
