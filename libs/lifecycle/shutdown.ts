/**
 * Graceful shutdown. Steps registered at start-up run in reverse registration order (the last
 * thing started stops first: stop consuming before closing the producer it feeds, close the
 * producer before the database pool), one at a time, each awaited and logged with its duration.
 * A failing step is logged and the next one still runs. The whole sequence is bounded: after
 * `timeoutMs` the process logs what was still running and exits 1 rather than hang past the
 * orchestrator's kill deadline with nothing said.
 *
 * Exit code: 0 after a clean shutdown; 1 when a step failed, time ran out, or the shutdown was
 * caused by an uncaught exception or unhandled rejection.
 */
import type { EventEmitter } from 'node:events';
import type { Logger } from 'pino';

export interface ShutdownOptions {
  log: Logger;
  timeoutMs: number;
  /** process.exit by default; tests record the code instead. */
  exit?: (code: number) => void;
  /** Where signals and fatal errors are listened for; `process` by default. */
  process?: EventEmitter;
}

export interface Shutdown {
  /** Registers a step; steps run in reverse order of registration. */
  onShutdown(name: string, fn: () => Promise<void> | void): void;
  /** Starts shutting down (once); resolves after the exit function was called. */
  shutdown(reason: string): Promise<void>;
  /** Logs `err` as fatal and shuts down with exit code 1 (a start-up that failed is no clean exit). */
  fail(what: string, err: unknown): Promise<void>;
}

const SIGNALS = ['SIGTERM', 'SIGINT'] as const;

export function createShutdown(options: ShutdownOptions): Shutdown {
  const { log, timeoutMs } = options;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const events: EventEmitter = options.process ?? process;
  const steps: { name: string; fn: () => Promise<void> | void }[] = [];
  let failed = false;
  let exited: Promise<void> | undefined;

  function begin(reason: string): Promise<void> {
    if (exited) {
      log.warn({ reason }, 'shutdown already in progress; ignoring');
      return exited;
    }
    const done = Promise.withResolvers<void>();
    exited = done.promise;
    const order = [...steps].reverse();
    const pending = order.map((s) => s.name);
    let finished = false;
    const finish = (code: number) => {
      if (finished) return;
      finished = true;
      clearTimeout(deadline);
      exit(code);
      done.resolve();
    };
    log.info({ reason, steps: steps.length, timeout_ms: timeoutMs }, 'shutting down');
    // Not unref'd: a step stuck on a promise with nothing else pending would otherwise let the
    // event loop drain and the process end with code 0 as if all went well.
    const deadline = setTimeout(() => {
      log.error(
        { still_running: pending[0], not_started: pending.slice(1), timeout_ms: timeoutMs },
        'shutdown timed out',
      );
      finish(1);
    }, timeoutMs);

    void (async () => {
      const started = performance.now();
      for (const step of order) {
        if (finished) return;
        const stepStarted = performance.now();
        try {
          await step.fn();
          log.info(
            { step: step.name, ms: Math.round(performance.now() - stepStarted) },
            'shutdown step done',
          );
        } catch (err) {
          failed = true;
          log.error(
            { err, step: step.name, ms: Math.round(performance.now() - stepStarted) },
            'shutdown step failed',
          );
        }
        pending.shift();
      }
      if (finished) return;
      const code = failed ? 1 : 0;
      log.info({ ms: Math.round(performance.now() - started), exit_code: code }, 'shutdown complete');
      finish(code);
    })();
    return exited;
  }

  function fatal(what: string, err: unknown): Promise<void> {
    failed = true;
    log.fatal({ err }, what);
    return begin(what);
  }

  for (const signal of SIGNALS) events.on(signal, () => void begin(signal));
  events.on('uncaughtException', (err: unknown) => void fatal('uncaught exception', err));
  events.on('unhandledRejection', (reason: unknown) => void fatal('unhandled promise rejection', reason));

  return {
    onShutdown(name, fn) {
      steps.push({ name, fn });
    },
    shutdown: begin,
    fail: fatal,
  };
}
