/**
 * The partition a key lands on, as Tidings' producers choose it (KafkaJS's DefaultPartitioner,
 * murmur2 like the Java client): lets a reader of a keyed stream read the one partition that holds
 * a person's records instead of the whole topic.
 */
import kafkajs, { type PartitionMetadata } from 'kafkajs';

const { Partitioners } = kafkajs;

export function partitionForKey(key: string, numPartitions: number): number {
  if (!Number.isInteger(numPartitions) || numPartitions < 1)
    throw new Error(`a topic has at least one partition, got ${numPartitions}`);
  const partitionMetadata = Array.from(
    { length: numPartitions },
    (_, partitionId): PartitionMetadata => ({
      partitionId,
      leader: 0,
      partitionErrorCode: 0,
      replicas: [0],
      isr: [0],
      offlineReplicas: [],
    }),
  );
  // The keyed path of the partitioner is a pure function of key and partition count.
  return Partitioners.DefaultPartitioner()({ topic: '', partitionMetadata, message: { key, value: null } });
}
