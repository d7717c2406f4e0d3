/**
 * services/inbox as a process for the integration, browser and bench tests: its own Postgres
 * schema, consumer group and ports, a token key ring of the test's, and the notify.web records the
 * router would write.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { join } from 'node:path';
import type { NotificationInput, RecordInput } from '../../libs/schemas/types.generated.ts';
import { parseTokenKeyRing, signInboxToken } from '../../services/inbox/token.ts';
import { eventually, freePort, retryDelaysVar, serviceEnv } from './harness.ts';

export const INBOX_KEYS = `k1:${randomBytes(32).toString('base64')}`;
export const inboxRing = parseTokenKeyRing(INBOX_KEYS);
/** The inbox's RETRY_DELAYS in tests: short, so a retried record is back at once. */
export const INBOX_RETRY_DELAYS_MS: readonly number[] = [200];

export interface InboxProcess {
  child: ChildProcess;
  /** The API and page. */
  base: string;
  opsPort: number;
  schema: string;
  group: string;
  stop(): Promise<void>;
}

/** Starts an inbox and waits until it is ready; env overrides serviceEnv's test defaults. */
export async function startInbox({
  dc,
  schema,
  group = `inbox-${dc}`,
  env = {},
}: {
  dc: string;
  schema: string;
  group?: string;
  env?: Record<string, string>;
}): Promise<InboxProcess> {
  const opsPort = await freePort();
  const apiPort = await freePort();
  const child = spawn(
    process.execPath,
    [join(import.meta.dirname, '..', '..', 'services', 'inbox', 'main.ts')],
    {
      env: serviceEnv(dc, opsPort, {
        DATABASE_SCHEMA: schema,
        INBOX_PORT: String(apiPort),
        INBOX_TOKEN_KEYS: INBOX_KEYS,
        INBOX_CONSUMER_GROUP: group,
        CONSUMER_SESSION_TIMEOUT: '6s',
        CHECKPOINT_INTERVAL: '500ms',
        RETRY_DELAYS: retryDelaysVar(INBOX_RETRY_DELAYS_MS),
        ...env,
      }),
      stdio: ['ignore', 'inherit', 'inherit'],
    },
  );
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  };
  await eventually(
    async () => {
      if (child.exitCode !== null) throw new Error(`inbox exited with ${child.exitCode} before it was ready`);
      const res = await fetch(`http://127.0.0.1:${opsPort}/readyz`).catch(() => undefined);
      return res?.status === 200 ? true : undefined;
    },
    'the inbox to be ready',
    60_000,
  );
  return { child, base: `http://127.0.0.1:${apiPort}`, opsPort, schema, group, stop };
}

export function inboxToken(userId: string, ttlMs = 10 * 60_000): Promise<string> {
  return signInboxToken(inboxRing, userId, { ttlMs });
}

/** A notify.web record as the router writes it. */
export function webRecord(
  recipient: string,
  {
    dt = Date.now(),
    folded = false,
    ...notification
  }: Partial<NotificationInput> & { dt?: number; folded?: boolean } = {},
): RecordInput<'notify.web'> {
  const id = notification.notification_id ?? randomUUID();
  return {
    meta: { dt },
    folded,
    notification: {
      notification_id: id,
      event_id: `e-${id}`,
      event_type: 'edit-user-talk',
      category: 'edit-user-talk',
      recipient_id: recipient,
      agent: { id: 'a1', name: 'Alice' },
      title: 'Alice left a message on your talk page',
      url: 'https://wiki.example.org/wiki/User_talk:X',
      extra: {},
      priority: 1,
      bundle_key: null,
      locale: 'en',
      timezone: 'UTC',
      ...notification,
    },
  };
}
