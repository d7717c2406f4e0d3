/**
 * The one place that constructs KafkaJS objects. Keeping the client behind this module lets us
 * swap KafkaJS (unmaintained) for another client without touching services.
 */
import { Kafka, logLevel, Partitioners, type Producer, type ProducerConfig } from 'kafkajs';

export interface KafkaLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface KafkaClientOptions {
  clientId: string;
  brokers: readonly string[];
  logger?: KafkaLogger;
}

export function createKafka({ clientId, brokers, logger }: KafkaClientOptions): Kafka {
  return new Kafka({
    clientId,
    brokers: [...brokers],
    connectionTimeout: 3000,
    retry: { initialRetryTime: 100, retries: 8 },
    logLevel: logger ? logLevel.INFO : logLevel.NOTHING,
    ...(logger ? { logCreator: () => bridgeLog(logger) } : {}),
  });
}

/**
 * Our producers are idempotent with bounded retries on purpose: a send that keeps failing should
 * fail the batch (which is then fetched again) rather than hang; sinks deduplicate on
 * notification_id, so KafkaJS's warning about exactly-once is noise here.
 */
const SILENCED = new Set(['Limiting retries for the idempotent producer may invalidate EoS guarantees']);

/**
 * KafkaJS logs every error response at ERROR, also the ones it retries by itself while a new
 * topic's leader is elected or a group coordinator loads (every service start creates topics):
 * those are debug. An error KafkaJS gives up on reaches the caller, which logs it.
 */
const TRANSIENT_RESPONSES = [
  'This server is not the leader for that topic-partition',
  'This server does not host this topic-partition',
  'There is no leader for this topic-partition as we are in the middle of a leadership election',
  "The coordinator is loading and hence can't process requests for this group",
  'The coordinator is not available',
];

function bridgeLog(logger: KafkaLogger) {
  return ({ level, log }: { level: logLevel; log: { message: string; [k: string]: unknown } }) => {
    const { message, timestamp: _ts, logger: _name, ...rest } = log;
    if (SILENCED.has(message)) return;
    const obj = { kafkajs: rest };
    const transient =
      message.startsWith('Response ') && TRANSIENT_RESPONSES.includes(String(rest.error ?? ''));
    if (transient) logger.debug(obj, message);
    else if (level === logLevel.ERROR) logger.error(obj, message);
    else if (level === logLevel.WARN) logger.warn(obj, message);
    else if (level === logLevel.INFO) logger.info(obj, message);
    else logger.debug(obj, message);
  };
}

/**
 * Idempotent producer with acks=all: a send resolves only once every in-sync replica has the
 * record, which is what "durable" means before an offset may be committed.
 */
export function createProducer(kafka: Kafka, options: ProducerConfig = {}): Producer {
  return kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    // Java's murmur2 partitioning, so a key lands where any other Kafka client would put it.
    createPartitioner: Partitioners.DefaultPartitioner,
    ...options,
  });
}

/** Send options every Tidings producer uses; acks=-1 is acks=all. */
export const DURABLE_SEND = { acks: -1 as const };

/** Parses "host:port,host:port" as used in KAFKA_BROKERS. */
export function parseBrokers(value: string): string[] {
  return value
    .split(',')
    .map((b) => b.trim())
    .filter((b) => b.length > 0);
}
