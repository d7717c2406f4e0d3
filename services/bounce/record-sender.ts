/**
 * Everything bounce writes to Kafka, acknowledged by every in-sync replica before the promise
 * resolves: the SMTP receiver answers 250 and the ledger commits state only after that.
 */
import type { IHeaders, Producer } from 'kafkajs';
import { DURABLE_SEND } from '../../libs/kafka/client.ts';
import { topicFor } from '../../libs/kafka/topics.ts';
import type { StreamName } from '../../libs/schemas/catalog.ts';
import type { Serde } from '../../libs/schemas/serde.ts';
import type { StreamInputs } from '../../libs/schemas/types.generated.ts';

/** One record of a stream for this datacenter's topic; a null value is a tombstone. */
export type Outgoing = {
  [S in StreamName]: { readonly stream: S; readonly key: string; readonly value: StreamInputs[S] | null };
}[StreamName];

export interface RawRecord {
  readonly topic: string;
  readonly key: string | null;
  readonly value: Buffer;
  readonly headers: IHeaders;
}

export interface RecordSender {
  send(records: readonly Outgoing[]): Promise<void>;
  /** Bytes that are not a stream record (a dead-lettered mail), to a topic of this service. */
  sendRaw(record: RawRecord): Promise<void>;
}

export function createRecordSender(producer: Producer, serde: Serde, dc: string): RecordSender {
  return {
    async send(records) {
      if (records.length === 0) return;
      const encoded = await Promise.all(
        records.map(async (r) => ({
          topic: topicFor(dc, r.stream),
          message: {
            key: r.key,
            value: r.value === null ? null : await serde.encode(r.stream, r.value as never),
          },
        })),
      );
      const byTopic = new Map<string, (typeof encoded)[number]['message'][]>();
      for (const { topic, message } of encoded) byTopic.set(topic, [...(byTopic.get(topic) ?? []), message]);
      await producer.sendBatch({
        ...DURABLE_SEND,
        topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
      });
    },
    async sendRaw(record) {
      await producer.send({
        ...DURABLE_SEND,
        topic: record.topic,
        messages: [{ key: record.key, value: record.value, headers: record.headers }],
      });
    },
  };
}
