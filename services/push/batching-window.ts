/**
 * Per-partition batching windows. An item joins its partition's open window (opening one, with a
 * duration from `windowMs()`, if none is); the window flushes when its time is up or, early, when it
 * holds `maxItems`. Each item's promise settles with the flush result of the window it joined, so
 * the record behind it is only committed once its window's push was accepted.
 */
export interface BatchingWindowsOptions<T, R> {
  windowMs: () => number;
  maxItems: number;
  flush: (items: T[]) => Promise<R>;
}

export interface BatchingWindows<T, R> {
  add(partition: string, item: T): Promise<R>;
  /** Windows open now, for readiness and metrics. */
  open(): number;
}

interface OpenWindow<T, R> {
  items: T[];
  timer: NodeJS.Timeout;
  done: PromiseWithResolvers<R>;
}

export function createBatchingWindows<T, R>(options: BatchingWindowsOptions<T, R>): BatchingWindows<T, R> {
  const windows = new Map<string, OpenWindow<T, R>>();

  function close(partition: string, window: OpenWindow<T, R>) {
    clearTimeout(window.timer);
    if (windows.get(partition) === window) windows.delete(partition);
    options.flush(window.items).then(window.done.resolve, window.done.reject);
  }

  return {
    add(partition, item) {
      let window = windows.get(partition);
      if (!window) {
        const opened: OpenWindow<T, R> = {
          items: [],
          done: Promise.withResolvers<R>(),
          timer: setTimeout(() => close(partition, opened), options.windowMs()),
        };
        windows.set(partition, opened);
        window = opened;
      }
      window.items.push(item);
      if (window.items.length >= options.maxItems) close(partition, window);
      return window.done.promise;
    },
    open: () => windows.size,
  };
}
