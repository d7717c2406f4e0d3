/**
 * Services never create topics: started on a cluster where the plan was not (fully) applied, a
 * service refuses to start and names every topic it writes that is missing, and the fix.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pg from 'pg';
import { DEFAULT_DATABASE_URL } from '../../libs/config/common.ts';
import { holdTopicOf } from '../../libs/kafka/topic-plan.ts';
import { retryTopic } from '../../libs/kafka/topics.ts';
import {
  applyTestTopicPlan,
  deleteDcTopics,
  eventually,
  freePort,
  serviceEnv,
  testKafka,
  uniqueDc,
  withAdmin,
} from './harness.ts';

const kafka = testKafka('eqiad');
const db = new pg.Pool({ connectionString: DEFAULT_DATABASE_URL, max: 1 });
const dc = uniqueDc();
const schema = `router_${dc}`;

after(async () => {
  await deleteDcTopics(kafka, dc);
  await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await db.end();
});

test('a router without its hold topic and a retry topic exits at start, naming both and the fix', async () => {
  await applyTestTopicPlan(kafka, dc, { services: ['router'] });
  const gone = [holdTopicOf(dc), retryTopic(dc, 'notify.user', 'router', 10_000)];
  await withAdmin(kafka, (admin) => admin.deleteTopics({ topics: gone }));
  await eventually(async () => {
    const present = await withAdmin(kafka, (admin) => admin.listTopics());
    return gone.some((t) => present.includes(t)) ? undefined : true;
  }, 'the deleted topics to be gone');

  const port = await freePort();
  const child = spawn(
    process.execPath,
    [join(import.meta.dirname, '..', '..', 'services', 'router', 'main.ts')],
    {
      env: serviceEnv(dc, port, { DATABASE_SCHEMA: schema }),
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  for (const stream of [child.stdout, child.stderr]) {
    stream.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
  }
  // Before services stopped creating topics this router became ready instead: fail then, not hang.
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  const ready = eventually(
    async () => {
      if (child.exitCode !== null || child.signalCode !== null) return false;
      const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
      return res?.status === 200 ? true : undefined;
    },
    'the router to exit or be ready',
    60_000,
  );
  if (await Promise.race([exited.then(() => false), ready])) {
    child.kill('SIGKILL');
    assert.fail(`the router started without ${gone.join(', ')}`);
  }
  assert.equal(await exited, 1, output);
  assert.match(output, /router failed to start/);
  for (const topic of gone) assert.ok(output.includes(topic), `names ${topic}: ${output}`);
  assert.ok(output.includes(`tidings topics apply --dc ${dc}`), output);
  const present = await withAdmin(kafka, (admin) => admin.listTopics());
  for (const topic of gone) assert.ok(!present.includes(topic), `${topic} not created by the router`);
});
