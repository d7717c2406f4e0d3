/**
 * An SMTP misconfiguration (bad credentials, unknown host, rejected sender, TLS) as operators see
 * it: one clear log line saying what to fix, repeated once per period while it lasts rather than per
 * message, a gauge, /readyz failing, and a line when it is over. No secrets: the detail comes from
 * nodemailer's error, which names the step and the server's reply, never the password.
 */
import type { Logger } from 'pino';
import type { OperatorProblem } from './smtp-error.ts';

export interface OperatorFailure {
  readonly problem: OperatorProblem;
  readonly fix: string;
  readonly detail: string;
}

export interface OperatorAlarmOptions {
  readonly log: Logger;
  readonly logIntervalMs: number;
  /** Where mail goes, safe to log. */
  readonly target: string;
  readonly onChange: (problem: OperatorProblem, active: boolean) => void;
  readonly now?: () => number;
}

export interface OperatorAlarm {
  raise(failure: OperatorFailure): void;
  /** Mail went through: whatever was wrong is fixed. */
  clear(): void;
  readiness(): { ok: boolean; detail: string };
}

export function createOperatorAlarm(options: OperatorAlarmOptions): OperatorAlarm {
  const { log, logIntervalMs, target, onChange, now = Date.now } = options;
  let active: OperatorFailure | null = null;
  let since = 0;
  let loggedAt = Number.NEGATIVE_INFINITY;

  return {
    raise(failure) {
      const changed = active?.problem !== failure.problem;
      if (changed) {
        if (active) onChange(active.problem, false);
        onChange(failure.problem, true);
        since = now();
      }
      active = failure;
      if (!changed && now() - loggedAt < logIntervalMs) return;
      loggedAt = now();
      log.error(
        {
          operator_error: failure.problem,
          smtp: target,
          detail: failure.detail,
          since: new Date(since).toISOString(),
        },
        `SMTP misconfiguration (${failure.problem}): ${failure.fix}. Sending is held, nothing is dropped; it resumes by itself once this is fixed.`,
      );
    },
    clear() {
      if (!active) return;
      log.warn(
        { operator_error: active.problem, smtp: target, held_ms: now() - since },
        `SMTP misconfiguration (${active.problem}) resolved: sending again`,
      );
      onChange(active.problem, false);
      active = null;
      loggedAt = Number.NEGATIVE_INFINITY;
    },
    readiness() {
      return active
        ? { ok: false, detail: `SMTP misconfiguration (${active.problem}): ${active.fix}` }
        : { ok: true, detail: `sending to ${target}` };
    },
  };
}
