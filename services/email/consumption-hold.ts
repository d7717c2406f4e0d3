/**
 * Holding the sender's consumption for a reason that concerns every message, not one: the day's
 * send cap is spent (until the next ramp day), or SMTP is unreachable or misconfigured (until a
 * probe succeeds). Records met meanwhile stay in Kafka uncommitted, so nothing is retried in a
 * storm, dead-lettered or lost; each reason is held once however many records run into it.
 */
import type { Logger } from 'pino';

export interface ConsumptionHoldOptions {
  readonly pause: (reason: string) => void;
  readonly resume: (reason: string) => void;
  /** How often a probe runs while its reason holds. */
  readonly probeIntervalMs: number;
  readonly log: Logger;
  readonly onChange: (reason: string, held: boolean) => void;
  readonly now?: () => number;
}

export interface ConsumptionHold {
  /** Holds until `at` (ms since the epoch); a later `at` for the same reason extends it. */
  until(reason: string, at: number): void;
  /** Holds, then runs `probe` every interval and lets go once it says true. */
  untilProbe(reason: string, probe: () => Promise<boolean>): void;
  isHeld(reason: string): boolean;
  close(): void;
}

export function createConsumptionHold(options: ConsumptionHoldOptions): ConsumptionHold {
  const { pause, resume, probeIntervalMs, log, onChange, now = Date.now } = options;
  const holds = new Map<string, { timer: NodeJS.Timeout; until: number }>();
  // Timers are ref'd on purpose: a held sender is still working, and SIGTERM clears them.
  const start = (reason: string, at: number, fire: () => void) => {
    const timer = setTimeout(fire, Math.max(0, at - now()));
    const existing = holds.get(reason);
    if (existing) clearTimeout(existing.timer);
    else {
      pause(reason);
      onChange(reason, true);
    }
    holds.set(reason, { timer, until: at });
  };
  const release = (reason: string) => {
    const existing = holds.get(reason);
    if (!existing) return;
    clearTimeout(existing.timer);
    holds.delete(reason);
    onChange(reason, false);
    resume(reason);
    log.info({ reason }, 'sending resumes');
  };

  return {
    until(reason, at) {
      const existing = holds.get(reason);
      if (existing && existing.until >= at) return;
      if (!existing) log.warn({ reason, until: new Date(at).toISOString() }, 'sending held');
      start(reason, at, () => release(reason));
    },
    untilProbe(reason, probe) {
      if (holds.has(reason)) return;
      log.warn({ reason, probe_interval_ms: probeIntervalMs }, 'sending held until a probe succeeds');
      const attempt = () => {
        probe().then(
          (ok) => {
            if (!holds.has(reason)) return;
            if (ok) release(reason);
            else start(reason, now() + probeIntervalMs, attempt);
          },
          (err: unknown) => {
            log.warn({ err, reason }, 'probe failed unexpectedly; trying again later');
            if (holds.has(reason)) start(reason, now() + probeIntervalMs, attempt);
          },
        );
      };
      start(reason, now() + probeIntervalMs, attempt);
    },
    isHeld: (reason) => holds.has(reason),
    close() {
      for (const { timer } of holds.values()) clearTimeout(timer);
      holds.clear();
    },
  };
}
