/**
 * Writes deploy/k8s/base/ from deploy/k8s/workloads.ts and the topic plan, so a fact the code
 * already holds (a stream's partition count, a consumer group's name, the ops port) is not typed
 * again into YAML. The overlays (deploy/k8s/overlays/<dc>) are written by hand: they hold only
 * what differs between datacenters.
 *
 *   node deploy/k8s/generate.ts           rewrite deploy/k8s/base/
 *   node deploy/k8s/generate.ts --check   exit 1 if deploy/k8s/base/ is not what it would write
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { DEFAULT_DCS } from '../../libs/config/common.ts';
import { declaredPartitions } from '../../libs/kafka/topic-plan.ts';
import { topicFor } from '../../libs/kafka/topics.ts';
import {
  OPS_PORT,
  SHUTDOWN_TIMEOUT_SECONDS,
  TERMINATION_GRACE_SECONDS,
  WORKLOADS,
  type Workload,
} from './workloads.ts';

const BASE_DIR = join(import.meta.dirname, 'base');
const IMAGE = 'tidings';
/** The overlay's ConfigMap: the datacenter, the datacenter list, brokers, registry. */
export const DC_CONFIG_MAP = 'tidings-dc';
/** The Secret operators create in each namespace (docs/operations.md, "Secrets"). */
export const SECRET = 'tidings';
/** Ports of the datacenter's Kafka (plain and TLS listeners), registry and Postgres. */
const BACKEND_PORTS = [9092, 9093, 8081, 443, 5432];

type Manifest = Record<string, unknown>;

/** `DATABASE_URL` is read from the Secret's `database-url` key. */
export const secretKeyOf = (variable: string) => variable.toLowerCase().replaceAll('_', '-');

const labelsOf = (w: Workload) => ({
  'app.kubernetes.io/name': 'tidings',
  'app.kubernetes.io/component': w.name,
});

const securityContext = {
  runAsNonRoot: true,
  runAsUser: 10001,
  runAsGroup: 10001,
  readOnlyRootFilesystem: true,
  allowPrivilegeEscalation: false,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};

/** Variables every container of the image gets besides the overlay's ConfigMap. */
function envOf(w: Workload): Manifest[] {
  const plain: Record<string, string> = {
    HTTP_PORT: String(OPS_PORT),
    SHUTDOWN_TIMEOUT: `${SHUTDOWN_TIMEOUT_SECONDS}s`,
    ...w.env,
  };
  for (const p of w.publicPorts) {
    plain[p.portVar] = String(p.port);
    if (p.hostVar) plain[p.hostVar] = '0.0.0.0';
  }
  return [
    ...Object.entries(plain).map(([name, value]) => ({ name, value })),
    ...(w.secretFiles ?? []).map((name) => ({
      name,
      value: `/var/run/secrets/tidings/${secretKeyOf(name)}`,
    })),
    ...w.secretEnv.map((name) => ({
      name,
      valueFrom: { secretKeyRef: { name: SECRET, key: secretKeyOf(name) } },
    })),
  ];
}

function deployment(w: Workload): Manifest {
  const probe = (path: string, periodSeconds: number, failureThreshold: number) => ({
    httpGet: { path, port: 'ops' },
    periodSeconds,
    failureThreshold,
    timeoutSeconds: 3,
  });
  const fileMounts = w.secretFiles ?? [];
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: w.name, labels: labelsOf(w) },
    spec: {
      // KEDA owns the replica count; this is the count before it first acts.
      replicas: w.minReplicas,
      selector: { matchLabels: labelsOf(w) },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: {
          labels: labelsOf(w),
          annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(OPS_PORT) },
        },
        spec: {
          automountServiceAccountToken: false,
          terminationGracePeriodSeconds: TERMINATION_GRACE_SECONDS,
          securityContext: { runAsNonRoot: true, fsGroup: 10001, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: w.name,
              image: IMAGE,
              args: [w.service],
              envFrom: [{ configMapRef: { name: DC_CONFIG_MAP } }],
              env: envOf(w),
              ports: [
                { name: 'ops', containerPort: OPS_PORT },
                ...w.publicPorts.map((p) => ({ name: p.name, containerPort: p.port })),
              ],
              startupProbe: probe('/healthz', 5, 24),
              livenessProbe: probe('/healthz', 10, 3),
              readinessProbe: probe('/readyz', 5, 2),
              resources: {
                requests: { cpu: w.resources.cpu, memory: w.resources.memory },
                limits: { memory: w.resources.memoryLimit },
              },
              securityContext,
              volumeMounts: [
                { name: 'tmp', mountPath: '/tmp' },
                ...(fileMounts.length > 0
                  ? [{ name: 'secret-files', mountPath: '/var/run/secrets/tidings', readOnly: true }]
                  : []),
              ],
            },
          ],
          volumes: [
            { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } },
            ...(fileMounts.length > 0
              ? [
                  {
                    name: 'secret-files',
                    secret: {
                      secretName: SECRET,
                      items: fileMounts.map((v) => ({ key: secretKeyOf(v), path: secretKeyOf(v) })),
                    },
                  },
                ]
              : []),
          ],
        },
      },
    },
  };
}

function disruptionBudget(w: Workload): Manifest {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: w.name, labels: labelsOf(w) },
    spec: { maxUnavailable: 1, selector: { matchLabels: labelsOf(w) } },
  };
}

/**
 * Lag of the scaling group on the stream's topic of every datacenter prefix. A replica past the
 * partition count of one prefix would own only mirrored partitions, idle while the other
 * datacenter is up, so the partition count is the ceiling.
 */
function scaledObject(w: Workload): Manifest {
  return {
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'ScaledObject',
    metadata: { name: w.name, labels: labelsOf(w) },
    spec: {
      scaleTargetRef: { name: w.name },
      minReplicaCount: w.minReplicas,
      maxReplicaCount: declaredPartitions(w.scaleOn.stream),
      pollingInterval: 15,
      cooldownPeriod: 300,
      triggers: DEFAULT_DCS.map((dc) => ({
        type: 'kafka',
        metadata: {
          bootstrapServersFromEnv: 'KAFKA_BROKERS',
          consumerGroup: w.scaleOn.group,
          topic: topicFor(dc, w.scaleOn.stream),
          lagThreshold: '1000',
          offsetResetPolicy: 'earliest',
          allowIdleConsumers: 'false',
        },
      })),
    },
  };
}

function publicService(w: Workload): Manifest[] {
  if (w.publicPorts.length === 0) return [];
  return [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: w.name, labels: labelsOf(w) },
      spec: {
        type: 'ClusterIP',
        selector: labelsOf(w),
        ports: w.publicPorts.map((p) => ({ name: p.name, port: p.servicePort, targetPort: p.name })),
      },
    },
  ];
}

const tcp = (port: number) => ({ protocol: 'TCP', port });

/** DNS, the datacenter's Kafka, registry and Postgres, and `extraPorts` of the outside world. */
const egressRules = (extraPorts: readonly number[]) => [
  { ports: [tcp(53), { protocol: 'UDP', port: 53 }] },
  { ports: [...BACKEND_PORTS, ...extraPorts].map(tcp) },
];

function networkPolicy(w: Workload): Manifest {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: w.name, labels: labelsOf(w) },
    spec: {
      podSelector: { matchLabels: labelsOf(w) },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [
        // Prometheus scrapes the ops port from the monitoring namespace.
        {
          from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }],
          ports: [tcp(OPS_PORT)],
        },
        ...(w.publicPorts.length > 0 ? [{ ports: w.publicPorts.map((p) => tcp(p.port)) }] : []),
      ],
      egress: egressRules(w.egressPorts),
    },
  };
}

/** Topics and schemas, before the services: `kubectl wait` for it (docs/operations.md, "Deploy"). */
const SETUP_LABELS = { 'app.kubernetes.io/name': 'tidings', 'app.kubernetes.io/component': 'setup' };

function setupJob(): Manifest {
  const labels = SETUP_LABELS;
  const global = [
    '--dc',
    '$(TIDINGS_DC)',
    '--brokers',
    '$(KAFKA_BROKERS)',
    '--registry',
    '$(SCHEMA_REGISTRY_URL)',
  ];
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: 'tidings-setup', labels },
    spec: {
      backoffLimit: 10,
      ttlSecondsAfterFinished: 86_400,
      template: {
        metadata: { labels },
        spec: {
          restartPolicy: 'OnFailure',
          automountServiceAccountToken: false,
          securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
          // Schemas first: once the topics exist, a service that starts finds its schemas too.
          initContainers: [
            {
              name: 'schemas-register',
              image: IMAGE,
              args: ['tidings', ...global, 'schemas', 'register'],
              envFrom: [{ configMapRef: { name: DC_CONFIG_MAP } }],
              securityContext,
              resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '512Mi' } },
            },
          ],
          containers: [
            {
              name: 'topics-apply',
              image: IMAGE,
              args: [
                'tidings',
                ...global,
                'topics',
                'apply',
                '--replication-factor',
                '3',
                '--prefixes',
                '$(TIDINGS_DCS)',
              ],
              envFrom: [{ configMapRef: { name: DC_CONFIG_MAP } }],
              securityContext,
              resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '512Mi' } },
            },
          ],
        },
      },
    },
  };
}

function setupNetworkPolicy(): Manifest {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'tidings-setup', labels: SETUP_LABELS },
    spec: {
      podSelector: { matchLabels: SETUP_LABELS },
      policyTypes: ['Ingress', 'Egress'],
      egress: egressRules([]),
    },
  };
}

function defaultDeny(): Manifest {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'default-deny' },
    spec: { podSelector: {}, policyTypes: ['Ingress', 'Egress'] },
  };
}

const HEADER =
  '# Generated by deploy/k8s/generate.ts from deploy/k8s/workloads.ts and the topic plan: do not edit.\n';

function toYaml(manifests: readonly Manifest[]): string {
  return HEADER + manifests.map((m) => stringify(m, { lineWidth: 0 })).join('---\n');
}

/** File name → content of deploy/k8s/base/. */
export function baseFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const w of WORKLOADS) {
    files.set(
      `${w.name}.yaml`,
      toYaml([deployment(w), disruptionBudget(w), scaledObject(w), networkPolicy(w), ...publicService(w)]),
    );
  }
  files.set('setup-job.yaml', toYaml([setupJob(), setupNetworkPolicy(), defaultDeny()]));
  files.set(
    'kustomization.yaml',
    HEADER +
      stringify({
        apiVersion: 'kustomize.config.k8s.io/v1beta1',
        kind: 'Kustomization',
        labels: [{ pairs: { 'app.kubernetes.io/part-of': 'tidings' } }],
        resources: [...files.keys()].sort(),
      }),
  );
  return files;
}

if (import.meta.main) {
  const files = baseFiles();
  if (process.argv.includes('--check')) {
    const present = readdirSync(BASE_DIR).sort();
    const stale = [...files]
      .filter(([name, text]) => {
        try {
          return readFileSync(join(BASE_DIR, name), 'utf8') !== text;
        } catch {
          return true;
        }
      })
      .map(([name]) => name);
    const extra = present.filter((name) => !files.has(name));
    if (stale.length + extra.length > 0) {
      console.error(
        `deploy/k8s/base is out of date (${[...stale, ...extra].join(', ')}): run node deploy/k8s/generate.ts`,
      );
      process.exit(1);
    }
  } else {
    rmSync(BASE_DIR, { recursive: true, force: true });
    mkdirSync(BASE_DIR, { recursive: true });
    for (const [name, text] of files) writeFileSync(join(BASE_DIR, name), text);
    console.log(`wrote ${files.size} files to deploy/k8s/base`);
  }
}
