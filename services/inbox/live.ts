/**
 * Live updates across inbox processes: every write announces the person on a Postgres NOTIFY
 * channel in its transaction (delivered on commit), and each process LISTENs on one connection and
 * wakes the event streams it holds for that person. A stream may be served by any process, not only
 * the one consuming the person's partition.
 */
import pg from 'pg';
import type { Logger } from 'pino';

export interface LiveHub {
  /** Calls `wake` whenever the person's inbox changed; returns the unsubscribe function. */
  subscribe(userId: string, wake: () => void): () => void;
  listeners(): number;
  /** Whether changes are being heard; while not, streams see nothing new until it reconnects. */
  connected(): boolean;
  close(): Promise<void>;
}

export async function startLiveHub({
  url,
  channel,
  log,
  reconnectMs = 1_000,
}: {
  url: string;
  channel: string;
  log: Logger;
  reconnectMs?: number;
}): Promise<LiveHub> {
  const byUser = new Map<string, Set<() => void>>();
  let client: pg.Client | null = null;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;

  const wakeAll = () => {
    for (const set of byUser.values()) for (const wake of set) wake();
  };

  async function connect(): Promise<void> {
    const c = new pg.Client({ connectionString: url, application_name: 'inbox-live' });
    c.on('notification', (msg) => {
      if (msg.channel !== channel || msg.payload === undefined) return;
      for (const wake of byUser.get(msg.payload) ?? []) wake();
    });
    c.on('error', (err) => {
      log.warn({ err }, 'live-update connection failed; reconnecting');
      c.end().catch(() => undefined);
      if (client === c) client = null;
      schedule();
    });
    await c.connect();
    await c.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    client = c;
    // Changes made while no connection listened: every stream looks for what it missed.
    wakeAll();
  }

  function schedule(): void {
    if (closed || timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      connect().catch((err: unknown) => {
        log.warn({ err }, 'live-update connection failed; retrying');
        schedule();
      });
    }, reconnectMs);
    timer.unref();
  }

  await connect();
  return {
    subscribe(userId, wake) {
      const set = byUser.get(userId) ?? new Set();
      set.add(wake);
      byUser.set(userId, set);
      return () => {
        set.delete(wake);
        if (set.size === 0) byUser.delete(userId);
      };
    },
    listeners: () => [...byUser.values()].reduce((sum, set) => sum + set.size, 0),
    connected: () => client !== null,
    async close() {
      closed = true;
      clearTimeout(timer);
      await client?.end();
    },
  };
}
