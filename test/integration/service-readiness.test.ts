/**
 * A service is not ready while its start() runs: Kubernetes would otherwise count a pod in (and
 * a rolling update would stop an old one) before its consumers exist. Seen with the router from
 * the image on a loaded machine: /readyz answered 200 while its main consumer was still joining.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { eventually, spawnService, uniqueDc } from './harness.ts';

test('/readyz answers 503 until start() is done, then 200', async () => {
  const service = await spawnService(
    join(import.meta.dirname, 'fixtures', 'slow-start-service.ts'),
    uniqueDc(),
  );
  const { port } = service;
  try {
    const starting = await eventually(
      async () => {
        const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
        return res
          ? { status: res.status, body: (await res.json()) as { checks: Record<string, unknown> } }
          : undefined;
      },
      'the ops server to answer',
      60_000,
    );
    assert.equal(starting.status, 503);
    assert.deepEqual(starting.body.checks['start-up'], { ok: false, detail: 'starting' });

    service.child.kill('SIGUSR2');
    await eventually(
      // A kept-alive connection the server closes as it is reused resets: ask again.
      async () =>
        (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status === 200
          ? true
          : undefined,
      '/readyz to answer 200 once start() is done',
      60_000,
    );
  } finally {
    await service.stop();
  }
});
