import assert from 'node:assert/strict';
import { test } from 'node:test';
import { partitionForKey } from '../../libs/kafka/key-partition.ts';

test('a key maps to the partition the Java client picks: toPositive(murmur2(key)) % partitions', () => {
  // murmur2 values from Kafka's own UtilsTest (clients/src/test/.../utils/UtilsTest.java).
  const javaMurmur2: Record<string, number> = {
    '21': -973932308,
    foobar: -790332482,
    'a-little-bit-long-string': -985981536,
    abc: 479470107,
  };
  for (const [key, murmur] of Object.entries(javaMurmur2)) {
    for (const partitions of [1, 3, 6, 7, 64]) {
      assert.equal(
        partitionForKey(key, partitions),
        (murmur & 0x7fffffff) % partitions,
        `${key} over ${partitions}`,
      );
    }
  }
  assert.throws(() => partitionForKey('k', 0), /at least one partition/);
});
