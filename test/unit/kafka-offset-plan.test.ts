import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type PartitionPosition,
  parseRollbackFile,
  partitionKey,
  planMoves,
  rollbackFor,
} from '../../libs/kafka/offset-plan.ts';

const positions: PartitionPosition[] = [
  { topic: 't', partition: 0, current: 50, low: 10, end: 100 },
  { topic: 't', partition: 1, current: 20, low: 0, end: 30 },
  { topic: 't', partition: 2, current: null, low: 0, end: 8 },
];
const targets = (...offsets: number[]) => new Map(offsets.map((o, p) => [partitionKey('t', p), o] as const));

describe('planMoves', () => {
  test('a replay moves back and counts the records processed again', () => {
    const moves = planMoves(positions, targets(40, 25, 3), 'back');
    assert.deepEqual(
      moves.map((m) => [m.partition, m.current, m.next, m.records]),
      [
        [0, 50, 40, 10],
        [1, 20, 20, 0],
        [2, null, 3, null],
      ],
    );
  });

  test('targets are clamped to the records the log still holds', () => {
    const moves = planMoves(positions, targets(2, 99, 99), 'any');
    assert.deepEqual(
      moves.map((m) => m.next),
      [10, 30, 8],
    );
  });

  test('a drop only moves forward and counts skipped records as negative', () => {
    const moves = planMoves(positions, targets(100, 5), 'forward');
    assert.deepEqual(
      moves.map((m) => [m.partition, m.next, m.records]),
      [
        [0, 100, -50],
        [1, 20, 0],
      ],
    );
  });
});

describe('rollback file', () => {
  test('holds the previous offsets and reads back', () => {
    const moves = planMoves(positions, targets(40, 10, 3), 'back');
    const file = rollbackFor('g', moves, new Date('2026-11-21T12:00:00Z'));
    assert.deepEqual(parseRollbackFile(JSON.stringify(file)), {
      group: 'g',
      createdAt: '2026-11-21T12:00:00.000Z',
      partitions: [
        { topic: 't', partition: 0, offset: 50 },
        { topic: 't', partition: 1, offset: 20 },
        { topic: 't', partition: 2, offset: null },
      ],
    });
  });

  test('a malformed file is refused naming what is wrong', () => {
    assert.throws(() => parseRollbackFile('{"partitions": []}'), /no "group"/);
    assert.throws(
      () => parseRollbackFile('{"group": "g", "partitions": [{"topic": "t", "partition": 0, "offset": -3}]}'),
      /partitions\[0\]/,
    );
  });
});
