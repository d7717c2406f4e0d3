import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type Checkpoint,
  type CheckpointRecord,
  groupRestarts,
  latestCheckpoints,
  restartTopics,
} from '../../libs/kafka/failover-plan.ts';

const MIN = 60_000;
const at = (group: string, topic: string, partition: number, recordTime: number): Checkpoint => ({
  group,
  topic,
  partition,
  recordTime,
});
const rec = (
  partition: number,
  offset: number,
  value: Checkpoint | null,
  key?: string,
): CheckpointRecord => ({
  partition,
  offset,
  key: key ?? `${value?.group}|${value?.topic}|${value?.partition}`,
  value,
});

describe('latestCheckpoints', () => {
  test('the record at the highest offset wins per key, whatever order partitions were read in', () => {
    const records = [
      rec(0, 7, at('g', 'eqiad.notify.event', 0, 300)),
      rec(1, 2, at('g', 'eqiad.notify.event', 1, 100)),
      rec(0, 3, at('g', 'eqiad.notify.event', 0, 200)),
      rec(1, 5, at('g', 'eqiad.notify.event', 1, 150)),
    ];
    assert.deepEqual(
      latestCheckpoints(records)
        .map((c) => [c.partition, c.recordTime])
        .sort(),
      [
        [0, 300],
        [1, 150],
      ],
    );
  });

  test('a tombstone newer than a checkpoint erases it', () => {
    const records = [
      rec(0, 1, at('g', 'eqiad.notify.event', 0, 100)),
      rec(0, 2, null, 'g|eqiad.notify.event|0'),
    ];
    assert.deepEqual(latestCheckpoints(records), []);
  });
});

describe('groupRestarts', () => {
  test('a group restarts at its earliest partition time minus the margin, on every stream it read', () => {
    const t0 = Date.UTC(2026, 10, 21, 10);
    const restarts = groupRestarts(
      [
        at('router', 'eqiad.notify.event', 0, t0 + 9 * MIN),
        at('router', 'eqiad.notify.event', 1, t0 + 2 * MIN),
        at('router', 'codfw.notify.event', 0, t0 + 4 * MIN),
        at('router', 'eqiad.notify.event.router.retry-5s', 0, t0 + 7 * MIN),
        at('email', 'eqiad.notify.email', 0, t0 + 30 * MIN),
      ],
      5 * MIN,
    );
    assert.deepEqual(restarts, [
      {
        group: 'email',
        checkpoints: 1,
        earliestRecordTime: t0 + 30 * MIN,
        latestRecordTime: t0 + 30 * MIN,
        restartAt: t0 + 25 * MIN,
        streams: ['notify.email'],
      },
      {
        group: 'router',
        checkpoints: 4,
        earliestRecordTime: t0 + 2 * MIN,
        latestRecordTime: t0 + 9 * MIN,
        restartAt: t0 - 3 * MIN,
        streams: ['notify.event', 'notify.event.router.retry-5s'],
      },
    ]);
  });
});

describe('restartTopics', () => {
  const restart = groupRestarts([at('router', 'eqiad.notify.event', 0, 1000)], 0)[0]!;
  const dcs = { from: 'eqiad', to: 'codfw' };

  test('both prefixes of each stream, only where the surviving cluster has the topic', () => {
    const present = new Set(['eqiad.notify.event', 'codfw.notify.event', 'eqiad.notify.email']);
    assert.deepEqual(restartTopics(restart, dcs, present, []), ['codfw.notify.event', 'eqiad.notify.event']);
    assert.deepEqual(restartTopics(restart, dcs, new Set(['eqiad.notify.event']), []), [
      'eqiad.notify.event',
    ]);
  });

  test("the group's retry topics of those streams join; other topics it has offsets for do not", () => {
    const present = new Set([
      'eqiad.notify.event',
      'codfw.notify.event',
      'codfw.notify.event.router.retry-5s',
      'codfw.notify.event.router.dlq',
      'codfw.notify.email.email.retry-5s',
    ]);
    assert.deepEqual(restartTopics(restart, dcs, present, [...present]), [
      'codfw.notify.event',
      'codfw.notify.event.router.retry-5s',
      'eqiad.notify.event',
    ]);
  });
});
