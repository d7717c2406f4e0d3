/**
 * `tidings dlq` against dead letters an outsider wrote: the bounce receiver keeps unreadable mail
 * as raw bytes, and those bytes can be a well-formed, Confluent-framed notify.bounce record. Replay
 * must refuse them (it would make a hard bounce of the attacker's choosing a trusted record), and
 * `show` must not pass the ESC bytes of their headers to the operator's terminal.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { createProducer, DURABLE_SEND } from '../../libs/kafka/client.ts';
import { HEADER } from '../../libs/kafka/record-headers.ts';
import { createTopicsWithLeaders } from '../../libs/kafka/topic-admin.ts';
import { dlqTopic, topicFor } from '../../libs/kafka/topics.ts';
import { addressHash } from '../../libs/mail/verp.ts';
import { createSerde } from '../../libs/schemas/serde.ts';
import {
  BROKERS,
  deleteDcTopics,
  REGISTRY_URL,
  runTidings,
  testKafka,
  uniqueDc,
  withAdmin,
} from './harness.ts';

const kafka = testKafka();
const dc = uniqueDc();
const dlq = dlqTopic(dc, 'notify.bounce', 'bounce-smtp');
const target = topicFor(dc, 'notify.bounce');
const tidings = (...args: string[]) => runTidings('--brokers', BROKERS.eqiad.join(','), '--dc', dc, ...args);

before(async () => {
  await withAdmin(kafka, (admin) =>
    createTopicsWithLeaders(admin, [
      { topic: dlq, numPartitions: 1 },
      { topic: target, numPartitions: 1 },
    ]),
  );
  const victim = 'victim@example.org';
  const forged = await createSerde({ registryUrl: REGISTRY_URL }).encode('notify.bounce', {
    meta: {
      id: randomUUID(),
      dt: Date.now(),
      stream: 'notify.bounce',
      dc,
      producer: 'bounce',
      request_id: null,
    },
    address_hash: addressHash(victim),
    address: victim,
    recipient_id: null,
    notification_id: null,
    send_id: null,
    kind: 'hard',
    status: '5.1.1',
    smtp_code: 550,
    diagnostic: null,
    source: 'smtp_dsn',
    sending_domain: null,
  });
  const producer = createProducer(kafka);
  await producer.connect();
  await producer.send({
    topic: dlq,
    ...DURABLE_SEND,
    messages: [
      {
        key: null,
        value: forged,
        headers: {
          [HEADER.errorKind]: 'unrecognized',
          [HEADER.errorMessage]: 'neither \u001b[2J\u001b[1;1Hall clear\u0007',
          [HEADER.rawBytes]: String(forged.length),
          [HEADER.rawTruncated]: 'false',
        },
      },
    ],
  });
  await producer.disconnect();
});

after(() => deleteDcTopics(kafka, dc).catch(() => undefined));

test('replay of a DLQ of raw external bytes is refused, and nothing reaches the stream', async () => {
  const run = await tidings('dlq', 'replay', 'notify.bounce', '--service', 'bounce-smtp', '--execute');
  assert.equal(run.status, 1, run.stderr);
  assert.match(run.stderr, /raw external bytes/);
  const [stream] = await withAdmin(kafka, (admin) => admin.fetchTopicOffsets(target));
  assert.equal(stream?.high, '0', 'no record was re-published');
  const [kept] = await withAdmin(kafka, (admin) => admin.fetchTopicOffsets(dlq));
  assert.equal(Number(kept?.high) - Number(kept?.low), 1, 'the dead letter is kept for inspection');
});

test('dlq show prints the attacker-written error without its control bytes', async () => {
  const run = await tidings('dlq', 'show', 'notify.bounce', '--service', 'bounce-smtp');
  assert.equal(run.status, 0, run.stderr);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the bytes the attack sends.
  assert.doesNotMatch(run.stdout, /[\u001b\u0007]/);
  assert.match(run.stdout, /\ufffd\[2J/);
});
