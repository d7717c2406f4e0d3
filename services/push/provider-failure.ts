/**
 * What a failed send to one token means for push: the token is dead (never use it again), the
 * provider is busy or down (try again later, not before Retry-After), or the request itself is
 * wrong (dead-letter it with the provider's reason).
 */
export type ProviderFailure =
  | { kind: 'dead-token'; code: string }
  | { kind: 'transient'; code: string; retryAfterMs: number | null }
  | { kind: 'rejected'; code: string };

/** The nudge is fixed and valid, so FCM's INVALID_ARGUMENT for one token is about that token. */
const DEAD_TOKEN_CODES = new Set([
  'messaging/registration-token-not-registered',
  'messaging/invalid-registration-token',
  'messaging/invalid-argument',
]);

interface ErrorLike {
  code?: unknown;
  httpResponse?: { status?: number; headers?: Record<string, unknown> };
}

/** Retry-After as seconds or an HTTP date; null when absent or unreadable. */
export function retryAfterMs(value: unknown, now: number = Date.now()): number | null {
  if (typeof value !== 'string' || value.trim() === '') return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

export function classifyFailure(error: unknown, now: number = Date.now()): ProviderFailure {
  const { code: rawCode, httpResponse } = (error ?? {}) as ErrorLike;
  const code = typeof rawCode === 'string' ? rawCode : 'unknown';
  if (DEAD_TOKEN_CODES.has(code)) return { kind: 'dead-token', code };
  const status = httpResponse?.status;
  // No HTTP status at all: the request never got an answer (network, TLS, credential fetch).
  if (status === undefined || status === 429 || status >= 500) {
    return {
      kind: 'transient',
      code,
      retryAfterMs: retryAfterMs(httpResponse?.headers?.['retry-after'], now),
    };
  }
  return { kind: 'rejected', code };
}
