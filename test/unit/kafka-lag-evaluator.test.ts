import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  evaluatePartition,
  groupStatus,
  type LagSample,
  slide,
  statusExitCode,
} from '../../libs/kafka/lag-evaluator.ts';

/** Samples 10 s apart from [committed offset, lag] pairs. */
const window = (...pairs: [number, number][]): LagSample[] =>
  pairs.map(([committedOffset, lag], i) => ({ at: i * 10_000, committedOffset, lag }));

describe('partition rules (Burrow)', () => {
  test('no lag now is OK, whatever the offsets did', () => {
    assert.equal(evaluatePartition({ samples: window([5, 3], [4, 0]), consuming: false }), 'OK');
  });

  test('lag without a live member is STOP', () => {
    assert.equal(evaluatePartition({ samples: window([5, 3], [8, 1]), consuming: false }), 'STOP');
    assert.equal(evaluatePartition({ samples: window([5, 3]), consuming: false }), 'STOP');
  });

  test('zero lag somewhere in the window is OK even if the offset stood still since', () => {
    assert.equal(evaluatePartition({ samples: window([5, 0], [5, 2], [5, 4]), consuming: true }), 'OK');
  });

  test('an offset going backwards is REWIND', () => {
    assert.equal(
      evaluatePartition({ samples: window([10, 2], [12, 3], [4, 11]), consuming: true }),
      'REWIND',
    );
  });

  test('a rewind counts even after zero lag, until the offset is back where it was', () => {
    assert.equal(evaluatePartition({ samples: window([10, 0], [4, 6], [6, 5]), consuming: true }), 'REWIND');
    assert.equal(evaluatePartition({ samples: window([10, 0], [4, 6], [11, 2]), consuming: true }), 'OK');
  });

  test('a committed offset that does not move while lag stays is STALL', () => {
    assert.equal(evaluatePartition({ samples: window([7, 3], [7, 3], [7, 5]), consuming: true }), 'STALL');
  });

  test('an advancing offset whose lag never decreases is WARN', () => {
    assert.equal(evaluatePartition({ samples: window([7, 3], [9, 3], [12, 6]), consuming: true }), 'WARN');
  });

  test('an advancing offset whose lag decreased once is OK', () => {
    assert.equal(evaluatePartition({ samples: window([7, 3], [9, 2], [12, 6]), consuming: true }), 'OK');
  });

  test('a single sample with lag and a member gives no evidence against the consumer', () => {
    assert.equal(evaluatePartition({ samples: window([7, 3]), consuming: true }), 'OK');
  });
});

describe('group status and exit code', () => {
  test('STOP, STALL or REWIND on any partition makes the group ERR; WARN makes it WARN', () => {
    assert.equal(groupStatus(['OK', 'STALL']), 'ERR');
    assert.equal(groupStatus(['WARN', 'REWIND']), 'ERR');
    assert.equal(groupStatus(['OK', 'STOP']), 'ERR');
    assert.equal(groupStatus(['OK', 'WARN']), 'WARN');
    assert.equal(groupStatus(['OK', 'OK']), 'OK');
    assert.equal(groupStatus([]), 'OK');
  });

  test('the exit code is that of the worst group', () => {
    assert.equal(statusExitCode([]), 0);
    assert.equal(statusExitCode(['OK', 'WARN']), 1);
    assert.equal(statusExitCode(['WARN', 'ERR', 'OK']), 2);
  });
});

test('the window keeps the newest samples', () => {
  const samples = window([1, 1], [2, 1], [3, 1]);
  const next = { at: 99, committedOffset: 4, lag: 0 };
  assert.deepEqual(slide(samples, next, 3), [samples[1], samples[2], next]);
});
