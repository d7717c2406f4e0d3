/**
 * Services never create topics: started on a cluster where the plan was not (fully) applied, a
 * service refuses to start and names every topic it writes that is missing, and the fix.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import pg from 'pg';
import { DEFAULT_DATABASE_URL } from '../../libs/config/common.ts';
import { holdTopicOf } from '../../libs/kafka/topic-plan.ts';
import { retryTopic } from '../../libs/kafka/topics.ts';
import {
  applyTestTopicPlan,
  deleteDcTopics,
  eventually,
  spawnService,
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

  const router = await spawnService('router', dc, { DATABASE_SCHEMA: schema }, { capture: true });
  // Before services stopped creating topics this router became ready instead: fail then, not hang.
  const ready = eventually(
    async () => {
      if (router.child.exitCode !== null || router.child.signalCode !== null) return false;
      const res = await fetch(`http://127.0.0.1:${router.port}/readyz`).catch(() => undefined);
      return res?.status === 200 ? true : undefined;
    },
    'the router to exit or be ready',
    60_000,
  );
  if (await Promise.race([router.exited.then(() => false), ready])) {
    await router.stop('SIGKILL');
    assert.fail(`the router started without ${gone.join(', ')}`);
  }
  const output = router.output();
  assert.equal(await router.exited, 1, output);
  assert.match(output, /router failed to start/);
  for (const topic of gone) assert.ok(output.includes(topic), `names ${topic}: ${output}`);
  assert.ok(output.includes(`tidings topics apply --dc ${dc}`), output);
  const present = await withAdmin(kafka, (admin) => admin.listTopics());
  for (const topic of gone) assert.ok(!present.includes(topic), `${topic} not created by the router`);
});
