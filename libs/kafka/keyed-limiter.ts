/**
 * Runs tasks with at most `limit` in flight, strictly in submission order per key. Records of one
 * person share a key, so per-person ordering survives concurrency; records without a key have no
 * order to keep.
 *
 * It runs once per consumed record, so it keeps queues of jobs rather than chains of promises:
 * chaining each key's tail cost five promises per task and made the limiter a tenth of the
 * runtime's per-record time. `submit` reports through callbacks and costs one promise per task
 * (the task's own result); `run` adds the promise it hands back.
 */
export interface KeyedLimiter {
  /** `task` may also finish synchronously (return its value): it still runs in its turn. */
  run<T>(key: string | null, task: () => T | Promise<T>): Promise<T>;
  /** As `run`, but tells the task's value or error to `onValue` or `onError` instead of a promise. */
  submit<T>(
    key: string | null,
    task: () => T | Promise<T>,
    onValue: (value: T) => void,
    onError: (error: unknown) => void,
  ): void;
  active(): number;
}

interface Job {
  key: string | null;
  task: () => unknown;
  onValue: (value: unknown) => void;
  onError: (error: unknown) => void;
}

export function createKeyedLimiter(limit: number): KeyedLimiter {
  if (!Number.isInteger(limit) || limit < 1)
    throw new Error(`concurrency must be a positive integer, got ${limit}`);
  let running = 0;
  /** Jobs whose turn of their key has come, waiting for a slot, oldest first. */
  const ready: Job[] = [];
  let readyHead = 0;
  /** Per key with a job running or ready: the jobs submitted after it, in order. */
  const behind = new Map<string, Job[]>();
  // A key's queue while nothing waits behind its job: most keys never get a second job in flight,
  // so they get no array of their own. Never pushed to.
  const NONE: Job[] = [];

  const start = (job: Job) => {
    running++;
    let result: unknown;
    try {
      result = job.task();
    } catch (error) {
      result = Promise.reject(error);
    }
    Promise.resolve(result).then(
      (value) => {
        job.onValue(value);
        finished(job);
      },
      (error: unknown) => {
        job.onError(error);
        finished(job);
      },
    );
  };

  const schedule = (job: Job) => {
    if (running < limit) start(job);
    else ready.push(job);
  };

  // The freed slot goes to the oldest ready job first; the next job of the finished one's key
  // queues behind it, as a task submitted now would.
  function finished(job: Job) {
    running--;
    if (readyHead < ready.length) {
      const next = ready[readyHead]!;
      ready[readyHead++] = undefined as unknown as Job;
      if (readyHead === ready.length) {
        ready.length = 0;
        readyHead = 0;
      }
      start(next);
    }
    if (job.key === null) return;
    const queue = behind.get(job.key)!;
    if (queue.length === 0) behind.delete(job.key);
    else schedule(queue.shift()!);
  }

  function submit<T>(
    key: string | null,
    task: () => T | Promise<T>,
    onValue: (value: T) => void,
    onError: (error: unknown) => void,
  ): void {
    const job: Job = { key, task, onValue: onValue as (value: unknown) => void, onError };
    if (key !== null) {
      const queue = behind.get(key);
      if (queue === NONE) behind.set(key, [job]);
      else if (queue) queue.push(job);
      else behind.set(key, NONE);
      if (queue) return;
    }
    schedule(job);
  }

  return {
    run<T>(key: string | null, task: () => T | Promise<T>): Promise<T> {
      return new Promise<T>((resolve, reject) => submit(key, task, resolve, reject));
    },
    submit,
    active() {
      return running;
    },
  };
}
