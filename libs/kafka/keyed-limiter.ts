/**
 * Runs tasks with at most `limit` in flight, strictly in submission order per key. Records of one
 * person share a key, so per-person ordering survives concurrency; records without a key have no
 * order to keep.
 */
export interface KeyedLimiter {
  run<T>(key: string | null, task: () => Promise<T>): Promise<T>;
  active(): number;
}

export function createKeyedLimiter(limit: number): KeyedLimiter {
  if (!Number.isInteger(limit) || limit < 1)
    throw new Error(`concurrency must be a positive integer, got ${limit}`);
  let running = 0;
  const waiting: (() => void)[] = [];
  const tails = new Map<string, Promise<unknown>>();

  const acquire = (): Promise<void> => {
    if (running < limit) {
      running++;
      return Promise.resolve();
    }
    return new Promise((resolve) => waiting.push(resolve));
  };
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else running--;
  };
  const slot = async <T>(task: () => Promise<T>): Promise<T> => {
    await acquire();
    try {
      return await task();
    } finally {
      release();
    }
  };

  return {
    run(key, task) {
      if (key === null) return slot(task);
      const previous = tails.get(key);
      const result = previous ? previous.then(() => slot(task)) : slot(task);
      // The tail only orders the next task of this key; it must neither reject nor outlive the key.
      const tail: Promise<unknown> = result.then(forget, forget);
      tails.set(key, tail);
      function forget() {
        if (tails.get(key as string) === tail) tails.delete(key as string);
      }
      return result;
    },
    active() {
      return running;
    },
  };
}
