import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Admin } from 'kafkajs';
import { createTopicsWithLeaders } from '../../libs/kafka/topic-admin.ts';

/** An admin whose new topics get a serving leader one per metadata request, as a busy broker's do. */
function slowBroker(stuck: readonly string[] = []) {
  const ready = new Set<string>();
  let waiting: string[] = [];
  const admin = {
    async createTopics({ topics }: { topics: { topic: string }[] }) {
      waiting = topics.map((t) => t.topic).filter((t) => !stuck.includes(t));
      return true;
    },
    async fetchTopicMetadata({ topics }: { topics: string[] }) {
      const next = waiting.shift();
      if (next) ready.add(next);
      return {
        topics: topics.map((name) => ({
          name,
          partitions: [{ partitionId: 0, leader: ready.has(name) ? 1 : -1, replicas: [1], isr: [1] }],
        })),
      };
    },
    async fetchTopicOffsets(topic: string) {
      if (!ready.has(topic)) throw new Error(`${topic}: not leader`);
      return [{ partition: 0, offset: '0', high: '0', low: '0' }];
    },
  };
  return admin as unknown as Admin;
}

const names = (n: number) => Array.from({ length: n }, (_, i) => ({ topic: `t${i}` }));

test('many new topics whose leaders keep coming up are waited for past the time-out', async () => {
  // 20 topics at one per look, about 100 ms apart: twice the time-out, but never stalled for it.
  await createTopicsWithLeaders(slowBroker(), names(20), { timeoutMs: 1_000 });
});

test('topics without a leader for the whole time-out fail, naming only those', async () => {
  await assert.rejects(
    createTopicsWithLeaders(slowBroker(['t3', 't7']), names(10), { timeoutMs: 500 }),
    (error: Error) => {
      assert.match(error.message, /^topics t3, t7 have no serving leader/);
      return true;
    },
  );
});
