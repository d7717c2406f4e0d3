/**
 * Header names the runtime writes on retry and dead-letter records. They name where a record came
 * from, how often it failed and why, so `tidings dlq show` and an operator can act without
 * guessing; they mirror Kafka Connect's `__connect.errors.*` headers in spirit.
 */
import type { IHeaders } from 'kafkajs';

export const HEADER = {
  sourceTopic: 'tidings.source.topic',
  sourcePartition: 'tidings.source.partition',
  sourceOffset: 'tidings.source.offset',
  sourceTimestamp: 'tidings.source.timestamp',
  attempt: 'tidings.attempt',
  retryDue: 'tidings.retry.due',
  errorKind: 'tidings.error.kind',
  errorMessage: 'tidings.error.message',
  failedAt: 'tidings.failed.at',
  service: 'tidings.service',
  group: 'tidings.group',
  /**
   * On a dead letter that holds the raw bytes some outsider sent (the bounce receiver's mail): their
   * length. Such a DLQ is for inspection; `tidings dlq replay` refuses it, since replaying would
   * turn attacker bytes into records consumers trust.
   */
  rawBytes: 'tidings.raw.bytes',
  rawTruncated: 'tidings.raw.truncated',
} as const;

const RUNTIME_HEADERS = new Set<string>(Object.values(HEADER));
const MAX_ERROR_LENGTH = 1000;

export function headerString(headers: IHeaders | undefined, name: string): string | undefined {
  const raw = headers?.[name];
  const value = Array.isArray(raw) ? raw[0] : raw;
  if (value === undefined) return undefined;
  return typeof value === 'string' ? value : value.toString('utf8');
}

export function headerInt(headers: IHeaders | undefined, name: string): number | undefined {
  const text = headerString(headers, name);
  if (text === undefined) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** The upstream's own headers, without the runtime's bookkeeping from an earlier hop. */
export function passThroughHeaders(headers: IHeaders | undefined): IHeaders {
  const out: IHeaders = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (!RUNTIME_HEADERS.has(name) && value !== undefined) out[name] = value;
  }
  return out;
}

/**
 * Error text goes into a header that people read in terminals: one line, bounded, no control
 * characters an attacker could use to forge a second line.
 */
export function errorHeaderText(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping control characters is the point
  const oneLine = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return oneLine.length > MAX_ERROR_LENGTH ? `${oneLine.slice(0, MAX_ERROR_LENGTH - 1)}…` : oneLine;
}
