/**
 * The container image, run the way a container runtime runs it: `make test-image` builds it
 * (`make image-local`: a Debian base made with debootstrap) and this test starts the router from it
 * with `buildah run` on the host's network, against the local stack, under a datacenter prefix and
 * a Postgres schema of its own. The router must become ready (/readyz 200) and, on SIGTERM, drain
 * and exit 0 within SHUTDOWN_TIMEOUT: SIGTERM reaches node through the entry point.
 *
 *   TIDINGS_IMAGE   the image to run (default localhost/tidings:dev, what `make image` tags)
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { DEFAULT_DATABASE_URL } from '../../libs/config/common.ts';
import {
  applyTestTopicPlan,
  BROKERS,
  deleteDcTopics,
  eventually,
  freePort,
  REGISTRY_URL,
  testKafka,
} from '../integration/harness.ts';

const IMAGE = process.env.TIDINGS_IMAGE ?? 'localhost/tidings:dev';
const BUILDAH = ['--storage-driver', 'vfs'];
const SHUTDOWN_TIMEOUT_MS = 10_000;
const container = `tidings-image-test-${randomBytes(4).toString('hex')}`;
const dc = `t${randomBytes(4).toString('hex')}`;
const schema = `${dc}_router`;
const kafka = testKafka('eqiad');
const db = new pg.Pool({ connectionString: DEFAULT_DATABASE_URL, max: 1 });
let router: ChildProcess | undefined;

const buildah = (...args: string[]) =>
  execFileSync('buildah', [...BUILDAH, ...args], { encoding: 'utf8' }).trim();

before(async () => {
  await applyTestTopicPlan(kafka, dc, { services: ['router'] });
  buildah('from', '--name', container, IMAGE);
});

after(async () => {
  if (router && router.exitCode === null) router.kill('SIGKILL');
  buildah('rm', container);
  await deleteDcTopics(kafka, dc);
  await db.query(`drop schema if exists ${schema} cascade`);
  await db.end();
});

/**
 * The process `buildah run` started in the container: below buildah's own chroot helpers. A runtime
 * stops a container by signalling it (buildah run itself answers SIGTERM with SIGKILL), so the test
 * signals it the same way; it is node only if the entry point exec'd it rather than wrapping it.
 */
function containerMainProcess(buildahPid: number): { pid: number; cmdline: string } {
  let pid = buildahPid;
  for (;;) {
    const children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .map((line) => Number(line.trim()))
      .filter((n) => n > 0);
    assert.equal(children.length, 1, `process ${pid} has one child`);
    pid = children[0] ?? 0;
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
    if (!cmdline.startsWith('buildah')) return { pid, cmdline };
  }
}

test('the router runs from the image, gets ready, and stops on SIGTERM within SHUTDOWN_TIMEOUT', async (t) => {
  const port = await freePort();
  const env = {
    TIDINGS_DC: dc,
    TIDINGS_DCS: dc,
    KAFKA_BROKERS: BROKERS.eqiad.join(','),
    SCHEMA_REGISTRY_URL: REGISTRY_URL,
    DATABASE_URL: DEFAULT_DATABASE_URL,
    DATABASE_SCHEMA: schema,
    HTTP_PORT: String(port),
    SHUTDOWN_TIMEOUT: `${SHUTDOWN_TIMEOUT_MS}ms`,
    LOG_LEVEL: 'warn',
  };
  // The image's ENTRYPOINT with the service as its argument, as Kubernetes' `args: [router]` runs it.
  const child = spawn(
    'buildah',
    [
      ...BUILDAH,
      'run',
      '--isolation',
      'chroot',
      ...Object.entries(env).flatMap(([name, value]) => ['--env', `${name}=${value}`]),
      container,
      '--',
      '/app/deploy/image/entrypoint.sh',
      'router',
    ],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  router = child;
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;

  const ready = await eventually(
    async () => {
      if (child.exitCode !== null)
        throw new Error(`the router exited with ${child.exitCode} before it was ready`);
      const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
      return res?.status === 200 ? res.json() : undefined;
    },
    'the router in the image to answer /readyz with 200',
    // Seconds on an idle machine; minutes when the CPUs are oversubscribed (chroot, vfs, three groups).
    180_000,
  );
  assert.equal((ready as { ready: boolean }).ready, true);

  const info = (await (await fetch(`http://127.0.0.1:${port}/_info`)).json()) as { name: string; dc: string };
  assert.deepEqual([info.name, info.dc], ['router', dc]);

  // The image's HEALTHCHECK, run in the container the way a runtime runs it, finds the router healthy.
  const inspected = JSON.parse(buildah('inspect', '--type', 'image', IMAGE)) as {
    Docker: { config: { Healthcheck?: { Test: string[] } } };
  };
  const [form, ...healthcheck] = inspected.Docker.config.Healthcheck?.Test ?? [];
  assert.equal(form, 'CMD', 'the image has an exec-form HEALTHCHECK');
  buildah('run', '--isolation', 'chroot', '--env', `HTTP_PORT=${port}`, container, '--', ...healthcheck);

  // The router's own shutdown deadline is SHUTDOWN_TIMEOUT: past it, it exits 1. So exit code 0
  // says it drained within the timeout; the wait below only bounds a SIGTERM that never arrives.
  const main = containerMainProcess(child.pid ?? 0);
  assert.match(main.cmdline, /^node \/app\/services\/router\/main\.ts/, 'the entry point execs node');
  const stopAt = Date.now();
  process.kill(main.pid, 'SIGTERM');
  const [code, signal] = await Promise.race([
    exited,
    new Promise<never>((_, reject) =>
      setTimeout(
        () => reject(new Error('SIGTERM did not stop the router: it does not reach node')),
        SHUTDOWN_TIMEOUT_MS + 15_000,
      ).unref(),
    ),
  ]);
  t.diagnostic(`stopped ${Date.now() - stopAt} ms after SIGTERM`);
  assert.deepEqual(
    { code, signal },
    { code: 0, signal: null },
    'a graceful stop within SHUTDOWN_TIMEOUT exits 0',
  );
});
