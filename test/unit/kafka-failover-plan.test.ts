import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type Checkpoint,
  type CheckpointRecord,
  groupRestarts,
  latestCheckpoints,
  restartTargets,
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
        caughtUp: 0,
        retired: 0,
        earliestProgress: t0 + 30 * MIN,
        latestProgress: t0 + 30 * MIN,
        restartAt: t0 + 25 * MIN,
        streams: ['notify.email'],
        checkpointed: new Set(['eqiad.notify.email:0']),
      },
      {
        group: 'router',
        checkpoints: 4,
        caughtUp: 0,
        retired: 0,
        earliestProgress: t0 + 2 * MIN,
        latestProgress: t0 + 9 * MIN,
        restartAt: t0 - 3 * MIN,
        streams: ['notify.event', 'notify.event.router.retry-5s'],
        checkpointed: new Set([
          'eqiad.notify.event:0',
          'eqiad.notify.event:1',
          'codfw.notify.event:0',
          'eqiad.notify.event.router.retry-5s:0',
        ]),
      },
    ]);
  });

  test('a partition caught up counts from when it was, not from its last record, however old', () => {
    const t0 = Date.UTC(2026, 10, 21, 10);
    const sixDaysAgo = t0 - 6 * 24 * 60 * MIN;
    const [restart] = groupRestarts(
      [
        at('router', 'eqiad.notify.event', 0, t0 - 2 * MIN),
        { ...at('router', 'eqiad.notify.event.router.retry-1s', 0, sixDaysAgo), caughtUpTo: t0 },
        { group: 'router', topic: 'codfw.notify.event', partition: 0, recordTime: null, caughtUpTo: t0 },
      ],
      MIN,
    );
    assert.equal(restart?.restartAt, t0 - 3 * MIN);
    assert.equal(restart?.caughtUp, 2);
  });

  test('a checkpoint of a topic the group no longer reads is left out', () => {
    const t0 = Date.UTC(2026, 10, 21, 10);
    const [restart] = groupRestarts(
      [at('router', 'eqiad.notify.event', 0, t0), at('router', 'eqiad.notify.retired', 0, t0 - 600 * MIN)],
      0,
      { reads: (_group, topic) => topic !== 'eqiad.notify.retired' },
    );
    assert.equal(restart?.restartAt, t0);
    assert.equal(restart?.retired, 1);
    assert.deepEqual(restart?.streams, ['notify.event']);
  });

  test('a group asked for without checkpoints has no restart time', () => {
    const restarts = groupRestarts([at('router', 'eqiad.notify.event', 0, 1000)], 0, {
      groups: ['push', 'router'],
    });
    assert.deepEqual(
      restarts.map((r) => [r.group, r.checkpoints, r.restartAt]),
      [
        ['push', 0, null],
        ['router', 1, 1000],
      ],
    );
  });
});

describe('restartTargets', () => {
  const position = (partition: number, low: number) => ({
    topic: 'eqiad.notify.event',
    partition,
    current: 50,
    low,
    end: 100,
  });

  test('a checkpointed partition restarts at the restart time, one without a checkpoint at its log start', () => {
    const [restart] = groupRestarts([at('g', 'eqiad.notify.event', 0, 1000)], 0);
    const targets = restartTargets(
      restart!,
      [position(0, 0), position(1, 7)],
      new Map([
        ['eqiad.notify.event:0', 40],
        ['eqiad.notify.event:1', 60],
      ]),
    );
    assert.deepEqual(
      targets,
      new Map([
        ['eqiad.notify.event:0', 40],
        ['eqiad.notify.event:1', 7],
      ]),
    );
  });

  test('a group without checkpoints restarts everywhere at the log start', () => {
    const [restart] = groupRestarts([], 0, { groups: ['g'] });
    assert.deepEqual(
      restartTargets(restart!, [position(0, 3)], new Map()),
      new Map([['eqiad.notify.event:0', 3]]),
    );
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
