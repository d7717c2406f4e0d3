/**
 * Per-partition batching windows. An item joins its partition's open window (opening one, with a
 * duration from `windowMs()`, if none is); the window flushes when its time is up or, early, when it
 * holds `maxItems`. Each item's promise settles with the flush result of the window it joined, so
 * the record behind it is only committed once its window's push was accepted. `opened` learns of a
 * window as it opens, with the time its timer will close it, and what it returns goes to `flush`.
 */
export interface BatchingWindowsOptions<T, R, O> {
  windowMs: () => number;
  maxItems: number;
  opened: (closesAt: number) => O;
  flush: (items: T[], opened: O) => Promise<R>;
  now?: () => number;
}

export interface BatchingWindows<T, R> {
  add(partition: string, item: T): Promise<R>;
  /** Windows open now, for readiness and metrics. */
  open(): number;
}

interface OpenWindow<T, R, O> {
  items: T[];
  timer: NodeJS.Timeout;
  opened: O;
  done: PromiseWithResolvers<R>;
}

export function createBatchingWindows<T, R, O>(
  options: BatchingWindowsOptions<T, R, O>,
): BatchingWindows<T, R> {
  const { now = Date.now } = options;
  const windows = new Map<string, OpenWindow<T, R, O>>();

  function close(partition: string, window: OpenWindow<T, R, O>) {
    clearTimeout(window.timer);
    if (windows.get(partition) === window) windows.delete(partition);
    options.flush(window.items, window.opened).then(window.done.resolve, window.done.reject);
  }

  return {
    add(partition, item) {
      let window = windows.get(partition);
      if (!window) {
        const ms = options.windowMs();
        const opened: OpenWindow<T, R, O> = {
          items: [],
          done: Promise.withResolvers<R>(),
          opened: options.opened(now() + ms),
          timer: setTimeout(() => close(partition, opened), ms),
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
