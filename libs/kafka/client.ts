/**
 * The one place that constructs KafkaJS objects. Keeping the client behind this module lets us
 * swap KafkaJS (unmaintained) for another client without touching services.
 */
import {
  type Admin,
  Kafka,
  type KafkaConfig,
  logLevel,
  Partitioners,
  type Producer,
  type ProducerConfig,
  type SASLOptions,
} from 'kafkajs';

export interface KafkaLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export type SaslMechanism = 'plain' | 'scram-sha-256' | 'scram-sha-512' | 'oauthbearer';

/**
 * How to reach a secured cluster. Without `tls` the connection is plaintext; `tls: {}` trusts the
 * system's CAs. A client certificate (`cert` + `key`) is what an mTLS listener authenticates.
 */
export interface KafkaSecurity {
  tls?: { ca?: string; cert?: string; key?: string };
  sasl?:
    | { mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512'; username: string; password: string }
    /** The hook for OAUTHBEARER: asked for a fresh token at every (re)authentication. */
    | { mechanism: 'oauthbearer'; token: () => Promise<string> };
}

export interface KafkaClientOptions {
  clientId: string;
  brokers: readonly string[];
  logger?: KafkaLogger;
  security?: KafkaSecurity;
}

function saslConfig(sasl: NonNullable<KafkaSecurity['sasl']>): SASLOptions {
  if (sasl.mechanism === 'oauthbearer') {
    return { mechanism: 'oauthbearer', oauthBearerProvider: async () => ({ value: await sasl.token() }) };
  }
  // KafkaJS types each mechanism apart; the credentials are the same shape for all three.
  return { ...sasl } as SASLOptions;
}

function securityConfig({ tls, sasl }: KafkaSecurity): Pick<KafkaConfig, 'ssl' | 'sasl'> {
  return { ...(tls ? { ssl: { ...tls } } : {}), ...(sasl ? { sasl: saslConfig(sasl) } : {}) };
}

export function createKafka({ clientId, brokers, logger, security = {} }: KafkaClientOptions): Kafka {
  return new Kafka({
    clientId,
    brokers: [...brokers],
    connectionTimeout: 3000,
    retry: { initialRetryTime: 100, retries: 8 },
    logLevel: logger ? logLevel.INFO : logLevel.NOTHING,
    ...(logger ? { logCreator: () => bridgeLog(logger) } : {}),
    ...securityConfig(security),
  });
}

/** Why a connection to the cluster failed, as far as an operator's configuration can fix it. */
export type ConnectFailure =
  | 'sasl-refused'
  | 'tls-untrusted'
  | 'tls-hostname'
  | 'tls-client-certificate'
  | 'tls-mismatch'
  | 'unreachable';

const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_UNTRUSTED',
]);

/** Each error of a chain: KafkaJS wraps the socket's error in its own, once per retry layer. */
function* causes(error: unknown): Generator<{ name?: string; code?: string; message?: string }> {
  const seen = new Set<unknown>();
  let current = error as {
    name?: string;
    code?: string;
    message?: string;
    cause?: unknown;
    originalError?: unknown;
  };
  while (current && typeof current === 'object' && !seen.has(current)) {
    seen.add(current);
    yield current;
    current = (current.originalError ?? current.cause) as typeof current;
  }
}

export function classifyConnectFailure(error: unknown): ConnectFailure {
  for (const e of causes(error)) {
    const code = e.code ?? '';
    const message = e.message ?? '';
    if (e.name === 'KafkaJSSASLAuthenticationError') return 'sasl-refused';
    if (UNTRUSTED.has(code)) return 'tls-untrusted';
    if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return 'tls-hostname';
    if (/CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA|certificate required/i.test(`${code} ${message}`))
      return 'tls-client-certificate';
    if (e.name === 'KafkaJSConnectionClosedError') return 'tls-mismatch';
    if (
      /WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|Connection closed by the server|socket disconnected before secure/i.test(
        `${code} ${message}`,
      )
    )
      return 'tls-mismatch';
  }
  return 'unreachable';
}

/** Runs `fn` with an admin client connected for it alone, disconnected afterwards. */
export async function withAdmin<T>(kafka: Kafka, fn: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.disconnect();
  }
}

/**
 * Connects an admin client once and lets it go: a start-up check, so a wrong password or CA stops
 * the process at once with the reason, instead of consumers retrying it in the background.
 */
export async function probeKafka(kafka: Kafka): Promise<void> {
  const admin = kafka.admin();
  try {
    await admin.connect();
    await admin.describeCluster();
  } finally {
    await admin.disconnect().catch(() => {});
  }
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
