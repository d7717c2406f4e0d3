/**
 * Where a failed record goes next. Attempt n (1 = the first failure) waits delays[n-1] in its own
 * retry topic; past the last delay the record is dead-lettered. One topic per delay keeps every
 * retry topic's records in due order, so a consumer only ever waits on a partition's head.
 */
import { dlqTopic, retryTopic } from './topics.ts';

/** RETRY_DELAYS by default; the topic plan declares a retry topic for each. */
export const DEFAULT_RETRY_DELAYS_MS: readonly number[] = [1_000, 10_000, 60_000];

export type FailureRoute =
  | { kind: 'retry'; topic: string; attempt: number; dueAt: number; delayMs: number }
  | { kind: 'dead-letter'; topic: string; attempt: number };

export interface RetryPolicy {
  route(failedAttempt: number, now: number): FailureRoute;
  deadLetterTopic: string;
  retryTopics: string[];
  /** Retry topics of every datacenter prefix, so mirrored retries are picked up after a failover. */
  retryTopicsAcrossDcs(dcs: readonly string[]): string[];
}

export function createRetryPolicy(opts: {
  dc: string;
  stream: string;
  service: string;
  delaysMs: readonly number[];
}): RetryPolicy {
  const { dc, stream, service, delaysMs } = opts;
  const topics = delaysMs.map((delay) => retryTopic(dc, stream, service, delay));
  const deadLetterTopic = dlqTopic(dc, stream, service);
  return {
    deadLetterTopic,
    retryTopics: topics,
    retryTopicsAcrossDcs(dcs) {
      return dcs.flatMap((d) => delaysMs.map((delay) => retryTopic(d, stream, service, delay)));
    },
    route(failedAttempt, now) {
      const delayMs = delaysMs[failedAttempt - 1];
      if (delayMs === undefined)
        return { kind: 'dead-letter', topic: deadLetterTopic, attempt: failedAttempt };
      return {
        kind: 'retry',
        topic: topics[failedAttempt - 1]!,
        attempt: failedAttempt,
        dueAt: now + delayMs,
        delayMs,
      };
    },
  };
}
