/**
 * A Kafka client and a connected admin for one command, closed when the command is done.
 * Progress goes to stderr so stdout stays machine-readable.
 */
import type { Admin, Kafka } from 'kafkajs';
import { createKafka } from '../libs/kafka/client.ts';
import type { CliContext } from './context.ts';
import { printable } from './output.ts';

export async function withKafka<T>(
  ctx: CliContext,
  fn: (kafka: Kafka, admin: Admin) => Promise<T>,
): Promise<T> {
  const kafka = createKafka({ clientId: 'tidings-cli', brokers: ctx.brokers });
  const admin = kafka.admin();
  await admin.connect();
  try {
    return await fn(kafka, admin);
  } finally {
    await admin.disconnect();
  }
}

export function progress(message: string): void {
  process.stderr.write(`tidings: ${printable(message)}\n`);
}
