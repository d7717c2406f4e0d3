/**
 * Runs tasks with at most `limit` in flight, strictly in submission order per key. Records of one
 * person share a key, so per-person ordering survives concurrency; records without a key have no
 * order to keep.
 *
 * It runs once per consumed record, so it keeps queues of jobs rather than chains of promises:
 * chaining each key's tail cost five promises per task and made the limiter a tenth of the
 * runtime's per-record time. `submit` reports to a runner shared by every task of a kind,
 * synchronously for a task that returns a value, and costs no promise or closure of its own; `run`
 * adds the promise it hands back.
 */
/**
 * What `submit` runs: one object for every task of a kind, called with each task's item, so a
 * task costs no closures of its own.
 */
export interface TaskRunner<I, T> {
  /** May also finish synchronously (return its value): it still runs in its turn. */
  run(item: I): T | Promise<T>;
  done(item: I, value: T): void;
  failed(item: I, error: unknown): void;
}

export interface KeyedLimiter {
  /** `task` may also finish synchronously (return its value): it still runs in its turn. */
  run<T>(key: string | null, task: () => T | Promise<T>): Promise<T>;
  /**
   * As `run`, for a path that runs once per record: `runner.run(item)` in its turn, and its value
   * or error to `runner.done` or `runner.failed`, synchronously for a value.
   */
  submit<I, T>(key: string | null, runner: TaskRunner<I, T>, item: I): void;
  active(): number;
}

interface Job {
  key: string | null;
  runner: TaskRunner<unknown, unknown>;
  item: unknown;
  /** The job of the same key submitted after this one. */
  next: Job | null;
}

export function createKeyedLimiter(limit: number): KeyedLimiter {
  if (!Number.isInteger(limit) || limit < 1)
    throw new Error(`concurrency must be a positive integer, got ${limit}`);
  let running = 0;
  /** Jobs whose turn of their key has come, waiting for a slot, oldest first. */
  const ready: Job[] = [];
  let readyHead = 0;
  /**
   * Per key with a job running or ready: the key's last job. A key's jobs are linked through
   * `next`, so a key with thousands waiting costs no array to shift.
   */
  const lastOfKey = new Map<string, Job>();

  // A task that returns a value is done at once: its callbacks run synchronously, with no promise
  // and no microtask (most records are decided without waiting). Jobs start from one loop rather
  // than from the finished job's frame, or a run of synchronous jobs would recurse once per job.
  let draining = false;
  const drain = () => {
    if (draining) return;
    draining = true;
    try {
      while (running < limit && readyHead < ready.length) {
        const job = ready[readyHead]!;
        ready[readyHead++] = undefined as unknown as Job;
        if (readyHead === ready.length) {
          ready.length = 0;
          readyHead = 0;
        }
        start(job);
      }
    } finally {
      draining = false;
    }
  };

  const start = (job: Job) => {
    running++;
    let result: unknown;
    const { runner, item } = job;
    try {
      result = runner.run(item);
    } catch (error) {
      runner.failed(item, error);
      finished(job);
      return;
    }
    if (!isThenable(result)) {
      runner.done(item, result);
      finished(job);
      return;
    }
    result.then(
      (value) => {
        runner.done(item, value);
        finished(job);
        drain();
      },
      (error: unknown) => {
        runner.failed(item, error);
        finished(job);
        drain();
      },
    );
  };

  // The freed slot goes to the oldest ready job first; the next job of the finished one's key
  // queues behind the ready ones, as a task submitted now would. The caller drains.
  function finished(job: Job) {
    running--;
    if (job.next) ready.push(job.next);
    else if (job.key !== null) lastOfKey.delete(job.key);
  }

  function submit<I, T>(key: string | null, runner: TaskRunner<I, T>, item: I): void {
    const job: Job = { key, runner: runner as TaskRunner<unknown, unknown>, item, next: null };
    if (key !== null) {
      const last = lastOfKey.get(key);
      lastOfKey.set(key, job);
      if (last) {
        last.next = job;
        return;
      }
    }
    // Nothing waits for a slot: start it now rather than through the queue.
    if (!draining && running < limit && readyHead === ready.length) {
      start(job);
      if (readyHead < ready.length) drain();
      return;
    }
    ready.push(job);
    drain();
  }

  return {
    run<T>(key: string | null, task: () => T | Promise<T>): Promise<T> {
      return new Promise<T>((resolve, reject) =>
        submit(
          key,
          { run: task, done: (_, value: T) => resolve(value), failed: (_, error) => reject(error) },
          null,
        ),
      );
    },
    submit,
    active() {
      return running;
    },
  };
}

const isThenable = (value: unknown): value is PromiseLike<unknown> =>
  typeof (value as PromiseLike<unknown> | null)?.then === 'function';
