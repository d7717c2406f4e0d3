import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createBatchingWindows } from '../../services/push/batching-window.ts';
import { chooseWindowMs } from '../../services/push/window-duration.ts';

describe('push window duration', () => {
  test('random windows stay within their bounds, including at the extremes of the generator', () => {
    for (const r of [0, 0.25, 0.5, 0.999999, ...Array.from({ length: 1000 }, Math.random)]) {
      const ms = chooseWindowMs(2_000, 8_000, () => r);
      assert.ok(ms >= 2_000 && ms <= 8_000, `${ms} within [2000, 8000]`);
    }
    assert.equal(
      chooseWindowMs(2_000, 8_000, () => 0),
      2_000,
    );
    assert.equal(
      chooseWindowMs(2_000, 8_000, () => 0.999999),
      8_000,
    );
  });

  test('random windows vary, a fixed window does not', () => {
    const drawn = new Set(Array.from({ length: 50 }, () => chooseWindowMs(1_000, 60_000)));
    assert.ok(drawn.size > 1);
    assert.equal(chooseWindowMs(5_000, 5_000, Math.random), 5_000);
  });

  test('a minimum above the maximum is refused', () => {
    assert.throws(() => chooseWindowMs(9, 1), RangeError);
  });
});

describe('batching windows', () => {
  test('a full window flushes early; the rest wait for the time; partitions do not mix', async () => {
    const flushed: string[][] = [];
    const windows = createBatchingWindows<string, number, undefined>({
      windowMs: () => 20,
      maxItems: 2,
      opened: () => undefined,
      flush: async (items) => {
        flushed.push(items);
        return flushed.length;
      },
    });
    const a = windows.add('p0', 'a');
    const b = windows.add('p0', 'b');
    const c = windows.add('p0', 'c');
    const x = windows.add('p1', 'x');
    assert.deepEqual(flushed, [['a', 'b']], 'the full window went at once');
    assert.equal(windows.open(), 2);
    const results = await Promise.all([a, b, c, x]);
    assert.equal(results[0], results[1], 'a and b share a flush');
    assert.notEqual(results[2], results[0]);
    assert.deepEqual(flushed.slice(1).sort(), [['c'], ['x']]);
    assert.equal(windows.open(), 0);
  });

  test('every item of a window sees its failed flush', async () => {
    const windows = createBatchingWindows<string, void, undefined>({
      windowMs: () => 1,
      maxItems: 10,
      opened: () => undefined,
      flush: async () => {
        throw new Error('provider down');
      },
    });
    const results = await Promise.allSettled([windows.add('p', 'a'), windows.add('p', 'b')]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['rejected', 'rejected'],
    );
  });

  test('a window is announced as it opens, with its closing time, and flushes with what that returned', async () => {
    const clock = 1_000_000;
    const announced: number[] = [];
    const flushedWith: string[] = [];
    const windows = createBatchingWindows<string, void, string>({
      windowMs: () => 5,
      maxItems: 10,
      now: () => clock,
      opened: (closesAt) => {
        announced.push(closesAt);
        return `window-${announced.length}`;
      },
      flush: async (_items, opened) => {
        flushedWith.push(opened);
      },
    });
    await Promise.all([windows.add('p0', 'a'), windows.add('p0', 'b'), windows.add('p1', 'c')]);
    assert.deepEqual(announced, [clock + 5, clock + 5], 'one announcement per window, not per item');
    assert.deepEqual(flushedWith.sort(), ['window-1', 'window-2']);
  });
});
