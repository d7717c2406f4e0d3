import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createOffsetTracker } from '../../libs/kafka/offset-tracker.ts';

test('commits only up to the lowest unfinished offset', () => {
  const t = createOffsetTracker<string>();
  const [p10, p11, p12, p13] = ['10', '11', '12', '13'].map((o) => t.begin(o, `r${o}`));
  t.finish(p11!);
  t.finish(p13!);
  assert.equal(t.advance(), null, 'offset 10 is unfinished: nothing may be committed');
  t.finish(p10!);
  assert.deepEqual(t.advance(), { offset: 12n, data: 'r11' }, 'commit stops before unfinished 12');
  t.finish(p12!);
  assert.deepEqual(t.advance(), { offset: 14n, data: 'r13' });
  assert.equal(t.inFlight(), 0);
  assert.equal(t.advance(), null, 'nothing moved since the last advance');
});

test('refuses offsets out of order', () => {
  const t = createOffsetTracker<null>();
  t.begin('9', null);
  t.begin('10', null);
  assert.throws(() => t.begin('10', null), /must increase/);
  assert.throws(() => t.begin('9', null), /must increase/, 'compared as numbers, not as text');
  t.begin('11', null);
});

test('stays correct across many records (queue compaction)', () => {
  const t = createOffsetTracker<number>();
  const positions = Array.from({ length: 5000 }, (_, i) => t.begin(String(i), i));
  for (let i = 4999; i >= 1; i--) t.finish(positions[i]!);
  assert.equal(t.advance(), null);
  t.finish(positions[0]!);
  assert.deepEqual(t.advance(), { offset: 5000n, data: 4999 });
  t.finish(t.begin('5000', 5000));
  assert.deepEqual(t.advance(), { offset: 5001n, data: 5000 });
});
