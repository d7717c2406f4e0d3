/**
 * What runs in one datacenter's Kubernetes namespace: one Deployment per workload, all from the one
 * image. This table is the home of the facts the manifests need and the code does not hold
 * (which side of a service a Deployment runs, which consumer group drives its autoscaling, which
 * ports face the world); `generate.ts` turns it and the topic plan into deploy/k8s/base/.
 */
import type { StreamName } from '../../libs/schemas/catalog.ts';

export interface PublicPort {
  /** The Service's and the container port's name. */
  name: string;
  /** The variable that sets the listening port in the service's config. */
  portVar: string;
  port: number;
  /** The variable that sets the listening address, when it defaults to loopback. */
  hostVar?: string;
  /** The port the Service exposes (for example 25 for SMTP). */
  servicePort: number;
}

export interface Workload {
  /** Deployment name. */
  name: string;
  /** services/<service>/main.ts, the image's first argument. */
  service: 'router' | 'email' | 'push' | 'bounce' | 'inbox';
  /**
   * Plain settings of this workload (the datacenter ones come from the overlay). The example.org
   * values are the site's to replace, in an overlay patch (docs/operations.md, "Deploy").
   */
  env: Readonly<Record<string, string>>;
  /** Settings read from the `tidings` Secret (key = lower-case name with dashes). */
  secretEnv: readonly string[];
  /** Variables naming a file that is mounted from the Secret (key as above). */
  secretFiles?: readonly string[];
  /** The consumer group whose lag drives the replica count, and the stream it reads. */
  scaleOn: { group: string; stream: StreamName };
  minReplicas: number;
  /** Requests are what one instance is sized at in docs/architecture.md ("Scale"). */
  resources: { cpu: string; memory: string; memoryLimit: string };
  publicPorts: readonly PublicPort[];
  /** Egress beyond Kafka, the registry and Postgres: TCP ports of the outside world it calls. */
  egressPorts: readonly number[];
}

/**
 * Variables a library reads itself rather than the service's config, so `make deploy-check`
 * cannot find them in a config spec; each with the reason it is allowed.
 */
export const LIBRARY_ENV: Readonly<Record<string, string>> = {
  PGPASSWORD: "pg's password when DATABASE_URL (set by the overlay) carries none",
  GOOGLE_APPLICATION_CREDENTIALS: "firebase-admin's applicationDefault() reads the service account key file",
};

/** Every service's ops server (/metrics /healthz /readyz /_info) listens here in the cluster. */
export const OPS_PORT = 9100;
/** A graceful shutdown may take this long; the pod's grace period adds room for the preStop pause. */
export const SHUTDOWN_TIMEOUT_SECONDS = 25;
export const TERMINATION_GRACE_SECONDS = 40;

export const WORKLOADS: readonly Workload[] = [
  {
    name: 'router',
    service: 'router',
    env: {},
    secretEnv: ['PGPASSWORD'],
    scaleOn: { group: 'router', stream: 'notify.event' },
    minReplicas: 2,
    resources: { cpu: '1', memory: '512Mi', memoryLimit: '1Gi' },
    publicPorts: [],
    egressPorts: [],
  },
  {
    name: 'email-digest',
    service: 'email',
    env: {
      EMAIL_SIDES: 'digest',
      EMAIL_FROM: 'Tidings <notifications@mail.example.org>',
      EMAIL_SENDING_DOMAIN: 'mail.example.org',
      EMAIL_UNSUBSCRIBE_URL: 'https://notifications.example.org/unsubscribe',
    },
    secretEnv: ['PGPASSWORD', 'EMAIL_UNSUBSCRIBE_KEYS'],
    scaleOn: { group: 'email', stream: 'notify.email' },
    minReplicas: 2,
    resources: { cpu: '1', memory: '512Mi', memoryLimit: '1Gi' },
    publicPorts: [{ name: 'unsubscribe', portVar: 'EMAIL_UNSUBSCRIBE_PORT', port: 8102, servicePort: 80 }],
    egressPorts: [],
  },
  {
    name: 'email-sender',
    service: 'email',
    env: { EMAIL_SIDES: 'sender', VERP_DOMAIN: 'bounces.example.org' },
    secretEnv: ['PGPASSWORD', 'SMTP_URL', 'VERP_KEYS'],
    scaleOn: { group: 'email-sender', stream: 'notify.email-send' },
    minReplicas: 2,
    resources: { cpu: '500m', memory: '384Mi', memoryLimit: '768Mi' },
    publicPorts: [],
    egressPorts: [25, 465, 587],
  },
  {
    name: 'push',
    service: 'push',
    env: { FCM_PROJECT_ID: 'tidings-example' },
    secretEnv: ['PGPASSWORD'],
    secretFiles: ['GOOGLE_APPLICATION_CREDENTIALS'],
    scaleOn: { group: 'push', stream: 'notify.push' },
    minReplicas: 2,
    resources: { cpu: '1', memory: '512Mi', memoryLimit: '1Gi' },
    publicPorts: [],
    egressPorts: [443],
  },
  {
    name: 'bounce',
    service: 'bounce',
    env: { VERP_DOMAIN: 'bounces.example.org' },
    secretEnv: ['PGPASSWORD', 'VERP_KEYS', 'BOUNCE_WEBHOOK_SECRETS', 'BOUNCE_ADMIN_TOKEN'],
    scaleOn: { group: 'bounce', stream: 'notify.bounce' },
    minReplicas: 2,
    resources: { cpu: '500m', memory: '384Mi', memoryLimit: '768Mi' },
    publicPorts: [
      { name: 'smtp', portVar: 'BOUNCE_SMTP_PORT', port: 2526, hostVar: 'BOUNCE_SMTP_HOST', servicePort: 25 },
      {
        name: 'webhook',
        portVar: 'BOUNCE_WEBHOOK_PORT',
        port: 9107,
        hostVar: 'BOUNCE_WEBHOOK_HOST',
        servicePort: 80,
      },
    ],
    egressPorts: [],
  },
  {
    name: 'inbox',
    service: 'inbox',
    env: { INBOX_CORS_ORIGINS: 'https://wiki.example.org' },
    secretEnv: ['PGPASSWORD', 'INBOX_TOKEN_KEYS'],
    scaleOn: { group: 'inbox', stream: 'notify.web' },
    minReplicas: 2,
    resources: { cpu: '500m', memory: '384Mi', memoryLimit: '768Mi' },
    publicPorts: [{ name: 'api', portVar: 'INBOX_PORT', port: 8110, servicePort: 80 }],
    egressPorts: [],
  },
];
