import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createKafka } from '../../libs/kafka/client.ts';

function capture() {
  const lines: { level: string; message: string }[] = [];
  const at = (level: string) => (_obj: object, message: string) => lines.push({ level, message });
  return {
    lines,
    logger: { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') },
  };
}

test('error responses KafkaJS retries by itself are debug; others stay errors', () => {
  const { lines, logger } = capture();
  const kafkaLog = createKafka({ clientId: 't', brokers: ['127.0.0.1:1'], logger }).logger();
  kafkaLog.error('Response Metadata(key: 3, version: 6)', {
    error: 'This server does not host this topic-partition',
  });
  kafkaLog.error('Response Produce(key: 0, version: 7)', {
    error: 'The request included message batch larger than the configured segment size on the server',
  });
  kafkaLog.error('Crash: KafkaJSNumberOfRetriesExceeded', {
    error: 'This server does not host this topic-partition',
  });
  assert.deepEqual(
    lines.map((l) => l.level),
    ['debug', 'error', 'error'],
  );
});
