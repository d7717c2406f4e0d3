/**
 * The timer that releases soft-bounce suppressions whose cool-down is over. The ledger finds them
 * by index, so a sweep costs one indexed query when nothing is due; runs never overlap.
 */
import type { Logger } from 'pino';

export interface ReleaseSweepOptions {
  readonly intervalMs: number;
  /** Releases what is due at the sweep's now(); returns how many. */
  readonly run: () => Promise<number>;
  readonly log: Logger;
}

export function startReleaseSweep({ intervalMs, run, log }: ReleaseSweepOptions): { stop(): Promise<void> } {
  let running: Promise<void> | null = null;
  const timer = setInterval(() => {
    if (running) return;
    running = run()
      .then((released) => {
        if (released > 0) log.info({ released }, 'released soft-bounce suppressions whose cool-down is over');
      })
      .catch((error: unknown) => log.warn({ err: error }, 'release sweep failed; will retry'))
      .finally(() => {
        running = null;
      });
  }, intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
