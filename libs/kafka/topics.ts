/**
 * Topic naming. Every topic is `<dc>.<stream>`; a service writes only under its own DC's
 * prefix and reads a stream under every configured prefix (local-origin plus mirrored), so a
 * failover needs no renaming.
 */

/** What a datacenter name (and so a topic prefix) may look like; config validates against it too. */
export const DC_PATTERN = /^[a-z][a-z0-9-]*$/;

export function assertDc(dc: string): string {
  if (!DC_PATTERN.test(dc)) {
    throw new Error(`datacenter name "${dc}" must match ${DC_PATTERN} (e.g. eqiad, codfw)`);
  }
  return dc;
}

/** The topic a producer in `dc` writes `stream` to. */
export function topicFor(dc: string, stream: string): string {
  return `${assertDc(dc)}.${stream}`;
}

/** Every topic a consumer reads `stream` from: one per configured datacenter. */
export function topicsAcrossDcs(dcs: readonly string[], stream: string): string[] {
  return dcs.map((dc) => topicFor(dc, stream));
}

/** Splits `<dc>.<stream>` back into its parts; the stream keeps any further dots. */
export function parseTopic(topic: string): { dc: string; stream: string } {
  const dot = topic.indexOf('.');
  if (dot <= 0 || dot === topic.length - 1) {
    throw new Error(`topic "${topic}" is not of the form <dc>.<stream>`);
  }
  return { dc: topic.slice(0, dot), stream: topic.slice(dot + 1) };
}

/**
 * Retry and dead-letter topics belong to the consuming service and live under the service's
 * own DC prefix: `<dc>.<stream>.<service>.retry-<delay>` and `<dc>.<stream>.<service>.dlq`.
 */
export function retryTopic(dc: string, stream: string, service: string, delayMs: number): string {
  return `${topicFor(dc, stream)}.${service}.retry-${formatDelay(delayMs)}`;
}

export function dlqTopic(dc: string, stream: string, service: string): string {
  return `${topicFor(dc, stream)}.${service}.dlq`;
}

/** 500 → "500ms", 5000 → "5s", 120000 → "2m", 3600000 → "1h". */
export function formatDelay(ms: number): string {
  if (!Number.isInteger(ms) || ms <= 0)
    throw new Error(`retry delay must be a positive integer of ms, got ${ms}`);
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
