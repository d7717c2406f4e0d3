/**
 * `make deploy-check`: the Kubernetes manifests as rendered for every datacenter, held against the
 * code they deploy. Offline: kubectl only renders (kustomize), nothing talks to a cluster.
 *
 *   - deploy/k8s/base is what generate.ts writes (nobody edited the generated files);
 *   - every rendered object validates against the Kubernetes or KEDA schema of its kind;
 *   - every probe asks the ops server for a path it serves, on the port the service listens on;
 *   - every variable a Deployment sets (env and envFrom) is one its service's config reads (the
 *     service says which: `main.ts --accepted-env`), or a documented library variable;
 *   - the grace period outlasts SHUTDOWN_TIMEOUT;
 *   - no ScaledObject can scale past the partitions of a topic it scales on (the topic plan).
 *
 * Each check returns problems as text; main prints them all and exits 1 if there are any.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { parseDuration } from '../../libs/config/duration.ts';
import { TOPIC_PLAN } from '../../libs/kafka/topic-plan.ts';
import { LIBRARY_ENV } from './workloads.ts';

const ROOT = join(import.meta.dirname, '..', '..');
export const OVERLAYS = ['eqiad', 'codfw'] as const;

// Rendered objects are untyped YAML; the checks read them defensively.
// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are whatever the YAML holds
export type Manifest = Record<string, any>;

export function renderOverlay(dir: string): Manifest[] {
  const text = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
  return parseAllDocuments(text)
    .map((doc) => doc.toJS() as Manifest | null)
    .filter((m): m is Manifest => m !== null);
}

const nameOf = (m: Manifest) => `${m.kind}/${m.metadata?.name}`;

/** The kubernetes-models (or @kubernetes-models/keda) module holding the model of a group version. */
function modelModule(apiVersion: string): string {
  if (apiVersion.includes('keda.sh/')) return `@kubernetes-models/keda/${apiVersion}`;
  return `kubernetes-models/${apiVersion}`;
}

export async function validateSchemas(manifests: readonly Manifest[]): Promise<string[]> {
  const problems: string[] = [];
  for (const m of manifests) {
    let model: { new (data: unknown): { validate(): void } } | undefined;
    try {
      model = (await import(modelModule(String(m.apiVersion))))[m.kind];
    } catch {
      model = undefined;
    }
    if (!model) {
      problems.push(`${nameOf(m)}: no schema for ${m.apiVersion} ${m.kind}`);
      continue;
    }
    try {
      new model(m).validate();
    } catch (error) {
      problems.push(`${nameOf(m)}: ${(error as Error).message}`);
    }
  }
  return problems;
}

export interface PodTemplateOwner {
  owner: Manifest;
  podSpec: Manifest;
}

/** Deployments and Jobs, with the pod spec each runs. */
function podOwners(manifests: readonly Manifest[]): PodTemplateOwner[] {
  return manifests
    .filter((m) => m.kind === 'Deployment' || m.kind === 'Job')
    .map((owner) => ({ owner, podSpec: owner.spec?.template?.spec ?? {} }));
}

/** Names a container sets: its env, and the keys of the ConfigMaps and Secrets of its envFrom. */
function envNames(container: Manifest, manifests: readonly Manifest[]): string[] {
  const names = (container.env ?? []).map((e: Manifest) => String(e.name));
  for (const source of container.envFrom ?? []) {
    const ref = source.configMapRef ?? source.secretRef;
    const kind = source.configMapRef ? 'ConfigMap' : 'Secret';
    const found = manifests.find((m) => m.kind === kind && m.metadata?.name === ref?.name);
    if (found)
      names.push(
        ...Object.keys({ ...found.data, ...found.stringData }).map((k) => `${source.prefix ?? ''}${k}`),
      );
  }
  return names;
}

const envValue = (container: Manifest, name: string): string | undefined =>
  (container.env ?? []).find((e: Manifest) => e.name === name)?.value;

/**
 * Every variable a service's Deployment sets must be one the service reads: a misspelt name
 * would otherwise be silently ignored and the default used.
 */
export function checkEnv(
  manifests: readonly Manifest[],
  acceptedBy: (service: string) => readonly string[],
): string[] {
  const problems: string[] = [];
  for (const { owner, podSpec } of podOwners(manifests)) {
    if (owner.kind !== 'Deployment') continue;
    for (const c of podSpec.containers ?? []) {
      const service = String(c.args?.[0]);
      const accepted = new Set([...acceptedBy(service), ...Object.keys(LIBRARY_ENV)]);
      for (const name of envNames(c, manifests)) {
        if (!accepted.has(name)) {
          problems.push(
            `${nameOf(owner)} container ${c.name}: ${name} is not a variable the ${service} service reads`,
          );
        }
      }
    }
  }
  return problems;
}

/** Probes must name a path the ops server answers, on the port the service listens on. */
export function checkProbes(manifests: readonly Manifest[], servedPaths: readonly string[]): string[] {
  const problems: string[] = [];
  for (const { owner, podSpec } of podOwners(manifests)) {
    if (owner.kind !== 'Deployment') continue;
    for (const c of podSpec.containers ?? []) {
      const httpPort = Number(envValue(c, 'HTTP_PORT'));
      for (const kind of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
        const get = c[kind]?.httpGet;
        if (!get) {
          problems.push(`${nameOf(owner)} container ${c.name}: no HTTP ${kind}`);
          continue;
        }
        if (!servedPaths.includes(get.path)) {
          problems.push(
            `${nameOf(owner)} ${kind}: ${get.path} is not served (${servedPaths.join(', ')} are)`,
          );
        }
        const port =
          typeof get.port === 'number'
            ? get.port
            : (c.ports ?? []).find((p: Manifest) => p.name === get.port)?.containerPort;
        if (port !== httpPort) {
          problems.push(
            `${nameOf(owner)} ${kind}: port ${get.port} is not HTTP_PORT ${httpPort || '(unset)'}`,
          );
        }
      }
      if (c.readinessProbe?.httpGet?.path !== '/readyz') {
        problems.push(`${nameOf(owner)}: the readiness probe must ask /readyz`);
      }
      if (c.livenessProbe?.httpGet?.path !== '/healthz') {
        problems.push(
          `${nameOf(owner)}: the liveness probe must ask /healthz (a failing dependency is no reason to restart)`,
        );
      }
    }
  }
  return problems;
}

/** The pod must be given longer than the service's own shutdown deadline before SIGKILL. */
export function checkGracePeriod(manifests: readonly Manifest[]): string[] {
  const problems: string[] = [];
  for (const { owner, podSpec } of podOwners(manifests)) {
    if (owner.kind !== 'Deployment') continue;
    const grace = Number(podSpec.terminationGracePeriodSeconds ?? 30);
    for (const c of podSpec.containers ?? []) {
      const raw = envValue(c, 'SHUTDOWN_TIMEOUT');
      const timeoutMs = raw === undefined ? undefined : parseDuration(raw);
      if (timeoutMs === undefined) {
        problems.push(`${nameOf(owner)} container ${c.name}: SHUTDOWN_TIMEOUT must be set to a duration`);
      } else if (grace * 1000 <= timeoutMs) {
        problems.push(
          `${nameOf(owner)}: terminationGracePeriodSeconds ${grace} does not outlast SHUTDOWN_TIMEOUT ${raw}`,
        );
      }
    }
  }
  return problems;
}

/** `<dc>.<stream>` → stream's declared partitions. */
function partitionsOfTopic(topic: string): number | undefined {
  const stream = topic.slice(topic.indexOf('.') + 1);
  return TOPIC_PLAN.find((d) => d.stream === stream)?.partitions;
}

export function checkScaling(manifests: readonly Manifest[]): string[] {
  const problems: string[] = [];
  for (const m of manifests.filter((x) => x.kind === 'ScaledObject')) {
    const max = Number(m.spec?.maxReplicaCount ?? 100);
    const target = manifests.find(
      (x) => x.kind === 'Deployment' && x.metadata?.name === m.spec?.scaleTargetRef?.name,
    );
    if (!target) problems.push(`${nameOf(m)}: scales ${m.spec?.scaleTargetRef?.name}, which is not rendered`);
    for (const trigger of m.spec?.triggers ?? []) {
      if (trigger.type !== 'kafka') continue;
      const topic = String(trigger.metadata?.topic ?? '');
      const partitions = partitionsOfTopic(topic);
      if (partitions === undefined) {
        problems.push(`${nameOf(m)}: trigger topic "${topic}" is no topic of the plan`);
      } else if (max > partitions) {
        problems.push(
          `${nameOf(m)}: maxReplicaCount ${max} exceeds the ${partitions} partitions of ${topic}`,
        );
      }
    }
  }
  return problems;
}

/** The variables each service reads, from the service itself. */
export function acceptedEnv(service: string): string[] {
  const main = join(ROOT, 'services', service, 'main.ts');
  const out = execFileSync(process.execPath, [main, '--accepted-env'], { encoding: 'utf8' });
  return JSON.parse(out) as string[];
}

/** Paths the ops server answers with something other than 404. */
export async function servedOpsPaths(candidates: readonly string[]): Promise<string[]> {
  const { startOpsServer } = await import('../../libs/metrics/ops-server.ts');
  const { createRegistry } = await import('../../libs/metrics/registry.ts');
  const { createLogger } = await import('../../libs/log/logger.ts');
  const server = await startOpsServer({
    port: 0,
    host: '127.0.0.1',
    registry: createRegistry(),
    log: createLogger({ service: 'deploy-check', level: 'silent', dc: 'eqiad' }),
    info: { name: 'deploy-check', version: '0', dc: 'eqiad', dcs: ['eqiad'] },
  });
  try {
    const served: string[] = [];
    for (const path of candidates) {
      const res = await fetch(`http://127.0.0.1:${server.port}${path}`);
      await res.arrayBuffer();
      if (res.status !== 404) served.push(path);
    }
    return served;
  } finally {
    await server.close();
  }
}

if (import.meta.main) {
  const problems: string[] = [];
  const cache = new Map<string, string[]>();
  const accepted = (service: string) => {
    if (!cache.has(service)) cache.set(service, acceptedEnv(service));
    return cache.get(service) ?? [];
  };
  for (const dc of OVERLAYS) {
    const manifests = renderOverlay(join(ROOT, 'deploy', 'k8s', 'overlays', dc));
    const probePaths = [
      ...new Set(
        manifests
          .flatMap((m) => m.spec?.template?.spec?.containers ?? [])
          .flatMap((c: Manifest) =>
            ['startupProbe', 'livenessProbe', 'readinessProbe'].map((k) => c[k]?.httpGet?.path),
          )
          .filter((p: unknown): p is string => typeof p === 'string'),
      ),
    ];
    const found = [
      ...(await validateSchemas(manifests)),
      ...checkProbes(manifests, await servedOpsPaths(probePaths)),
      ...checkEnv(manifests, accepted),
      ...checkGracePeriod(manifests),
      ...checkScaling(manifests),
    ];
    problems.push(...found.map((p) => `${dc}: ${p}`));
    console.log(`overlay ${dc}: ${manifests.length} objects, ${found.length} problems`);
  }
  for (const p of problems) console.error(`  ${p}`);
  process.exit(problems.length > 0 ? 1 : 0);
}
