/**
 * A Kafka client and a connected admin for one command, closed when the command is done.
 * Progress goes to stderr so stdout stays machine-readable.
 */
import type { Admin, Kafka } from 'kafkajs';
import { kafkaConnectProblem } from '../libs/config/connectivity.ts';
import { classifyConnectFailure, createKafka } from '../libs/kafka/client.ts';
import { type CliContext, CliError, EXIT } from './context.ts';
import { printable } from './output.ts';

export async function withKafka<T>(
  ctx: CliContext,
  fn: (kafka: Kafka, admin: Admin) => Promise<T>,
): Promise<T> {
  const kafka = createKafka({ clientId: 'tidings-cli', brokers: ctx.brokers, security: ctx.kafkaSecurity });
  const admin = kafka.admin();
  await admin.connect().catch((error: unknown) => {
    const problem = kafkaConnectProblem(classifyConnectFailure(error), ctx.kafkaSecurityConfig, ctx.brokers);
    throw new CliError(`${problem} (${(error as Error).message})`, EXIT.problem);
  });
  try {
    return await fn(kafka, admin);
  } finally {
    await admin.disconnect();
  }
}

export function progress(message: string): void {
  process.stderr.write(`tidings: ${printable(message)}\n`);
}
