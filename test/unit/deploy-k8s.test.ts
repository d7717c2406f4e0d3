/**
 * `make deploy-check`'s checks catch the mistakes they exist for: each test breaks one thing in the
 * generated base (plus an overlay-like ConfigMap) and expects the check to name it. The real
 * overlays are rendered by `make deploy-check` itself, which needs kubectl; these need nothing.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import {
  acceptedEnv,
  checkEnv,
  checkGracePeriod,
  checkProbes,
  checkScaling,
  type Manifest,
  servedOpsPaths,
  validateSchemas,
} from '../../deploy/k8s/check.ts';
import { baseFiles, DC_CONFIG_MAP } from '../../deploy/k8s/generate.ts';
import { declaredPartitions } from '../../libs/kafka/topic-plan.ts';

const dcConfig: Manifest = {
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name: DC_CONFIG_MAP },
  data: {
    TIDINGS_DC: 'eqiad',
    TIDINGS_DCS: 'eqiad,codfw',
    KAFKA_BROKERS: 'kafka1:9092',
    SCHEMA_REGISTRY_URL: 'https://registry/apis/ccompat/v7',
    DATABASE_URL: 'postgres://tidings@db/tidings',
  },
};

function rendered(): Manifest[] {
  const docs = [...baseFiles()]
    .filter(([name]) => name !== 'kustomization.yaml')
    .flatMap(([, text]) => parseAllDocuments(text).map((d) => d.toJS() as Manifest));
  return [structuredClone(dcConfig), ...docs];
}

const find = (ms: Manifest[], kind: string, name: string) => {
  const m = ms.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(m, `${kind}/${name} is rendered`);
  return m;
};
const container = (ms: Manifest[], name: string) =>
  find(ms, 'Deployment', name).spec.template.spec.containers[0];

const accepted = new Map<string, string[]>();
const acceptedBy = (service: string) => {
  if (!accepted.has(service)) accepted.set(service, acceptedEnv(service));
  return accepted.get(service) ?? [];
};

describe('deploy-check', () => {
  test('the generated base passes every check', async () => {
    const ms = rendered();
    assert.deepEqual(await validateSchemas(ms), []);
    assert.deepEqual(checkProbes(ms, await servedOpsPaths(['/healthz', '/readyz'])), []);
    assert.deepEqual(checkEnv(ms, acceptedBy), []);
    assert.deepEqual(checkGracePeriod(ms), []);
    assert.deepEqual(checkScaling(ms), []);
  });

  test('a misspelt variable in a Deployment fails, naming it and the service', () => {
    const ms = rendered();
    container(ms, 'router').env.push({ name: 'ROUTER_SUNSET_DAYZ', value: '30' });
    assert.deepEqual(checkEnv(ms, acceptedBy), [
      'Deployment/router container router: ROUTER_SUNSET_DAYZ is not a variable the router service reads',
    ]);
  });

  test("a variable of another service fails too (push's FCM project on the router)", () => {
    const ms = rendered();
    container(ms, 'router').env.push({ name: 'FCM_PROJECT_ID', value: 'x' });
    assert.equal(checkEnv(ms, acceptedBy).length, 1);
  });

  test("a misspelt key of the overlay's ConfigMap fails in every Deployment that loads it", () => {
    const ms = rendered();
    find(ms, 'ConfigMap', DC_CONFIG_MAP).data.KAFKA_BROKER = 'kafka1:9092';
    const problems = checkEnv(ms, acceptedBy);
    assert.equal(problems.length, ms.filter((m) => m.kind === 'Deployment').length);
    assert.ok(problems.every((p) => p.includes('KAFKA_BROKER is not a variable')));
  });

  test('a probe on a path the ops server does not serve, or on another port, fails', async () => {
    const ms = rendered();
    const served = await servedOpsPaths(['/healthz', '/readyz', '/health']);
    assert.deepEqual(served, ['/healthz', '/readyz']);
    container(ms, 'push').readinessProbe.httpGet.path = '/health';
    container(ms, 'bounce').livenessProbe.httpGet.port = 9107;
    const problems = checkProbes(ms, served);
    assert.ok(problems.some((p) => p.startsWith('Deployment/push readinessProbe: /health is not served')));
    assert.ok(
      problems.some((p) => p.startsWith('Deployment/bounce livenessProbe: port 9107 is not HTTP_PORT 9100')),
    );
  });

  test('a grace period that does not outlast SHUTDOWN_TIMEOUT fails', () => {
    const ms = rendered();
    find(ms, 'Deployment', 'email-sender').spec.template.spec.terminationGracePeriodSeconds = 25;
    assert.deepEqual(checkGracePeriod(ms), [
      'Deployment/email-sender: terminationGracePeriodSeconds 25 does not outlast SHUTDOWN_TIMEOUT 25s',
    ]);
  });

  test('a ScaledObject allowed past the partitions of its topic fails', () => {
    const ms = rendered();
    const router = find(ms, 'ScaledObject', 'router');
    assert.equal(router.spec.maxReplicaCount, declaredPartitions('notify.event'));
    router.spec.maxReplicaCount = declaredPartitions('notify.event') + 1;
    assert.deepEqual(checkScaling(ms), [
      `ScaledObject/router: maxReplicaCount ${declaredPartitions('notify.event') + 1} exceeds the ${declaredPartitions('notify.event')} partitions of eqiad.notify.event`,
      `ScaledObject/router: maxReplicaCount ${declaredPartitions('notify.event') + 1} exceeds the ${declaredPartitions('notify.event')} partitions of codfw.notify.event`,
    ]);
  });

  test('an object that breaks its Kubernetes or KEDA schema fails', async () => {
    const ms = rendered();
    find(ms, 'Deployment', 'router').spec.replicas = 'two';
    find(ms, 'ScaledObject', 'push').spec.minReplicaCount = 'one';
    const problems = await validateSchemas(ms);
    assert.equal(problems.length, 2);
    assert.match(problems[0] ?? '', /Deployment\/router: .*replicas must be integer/);
    assert.match(problems[1] ?? '', /ScaledObject\/push: .*minReplicaCount must be integer/);
  });
});
