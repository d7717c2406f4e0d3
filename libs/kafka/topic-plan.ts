/**
 * The declared topics of every stream, and how a cluster differs from them.
 *
 * Each cluster holds every datacenter's copy of a stream: `<its dc>.<stream>` written locally and
 * `<other dc>.<stream>` written by MirrorMaker. Both are declared here, so consumers can subscribe
 * across all prefixes before the first record is mirrored, and a mirror copy has the partitions
 * MirrorMaker expects (it keeps partition numbers).
 *
 * Partition counts are only ever reported, never changed: adding partitions remaps keys, which
 * breaks per-key ordering while old records drain, so that is an operator's deliberate act.
 */

import kafkajs, { type Admin } from 'kafkajs';
import { CHECKPOINT_STREAM } from './checkpointer.ts';
import { DEFAULT_RETRY_DELAYS_MS } from './retry-policy.ts';
import { createTopicsWithLeaders } from './topic-admin.ts';
import { dlqTopic, retryTopic, topicFor } from './topics.ts';

// kafkajs builds its exports with a spread, which hides these from ESM named imports.
const { ConfigResourceTypes, ConfigSource } = kafkajs;

const DAY_MS = 86_400_000;

/** Time-retained: old records go after `days`, long enough to replay across a long weekend. */
function retainedFor(days: number): Record<string, string> {
  return { 'cleanup.policy': 'delete', 'retention.ms': String(days * DAY_MS) };
}

/**
 * Compacted: the latest record per key stays forever. Tombstones are kept for a week (Kafka's
 * default is a day) so a consumer that was down for days still sees an erasure or a lifted
 * suppression instead of keeping stale state.
 */
const COMPACTED: Record<string, string> = {
  'cleanup.policy': 'compact',
  'delete.retention.ms': String(7 * DAY_MS),
};

export interface TopicDeclaration {
  stream: string;
  partitions: number;
  config: Readonly<Record<string, string>>;
}

/**
 * Production partition counts, sized in docs/architecture.md ("Scale") for 100 million people and
 * 1 billion notifications a day; the most replicas a consumer group can use is its topic's count.
 * The local stack caps them (LOCAL_MAX_PARTITIONS): one laptop broker needs no 24-way parallelism.
 */
export const TOPIC_PLAN: readonly TopicDeclaration[] = [
  { stream: 'notify.event', partitions: 24, config: retainedFor(7) },
  { stream: 'notify.user', partitions: 24, config: COMPACTED },
  { stream: 'notify.preference-change', partitions: 6, config: retainedFor(30) },
  { stream: 'notify.push-subscription', partitions: 12, config: COMPACTED },
  { stream: 'notify.web', partitions: 24, config: retainedFor(7) },
  { stream: 'notify.email', partitions: 12, config: retainedFor(7) },
  { stream: 'notify.push', partitions: 36, config: retainedFor(7) },
  { stream: 'notify.email-send', partitions: 24, config: retainedFor(7) },
  { stream: 'notify.bounce', partitions: 6, config: retainedFor(30) },
  { stream: 'notify.suppression', partitions: 6, config: COMPACTED },
  // Every member writes a caught-up checkpoint per partition each CHECKPOINT_CAUGHT_UP_INTERVAL;
  // compaction never touches the open segment, so it rolls hourly or the topic grows without bound.
  { stream: 'notify.checkpoint', partitions: 3, config: { ...COMPACTED, 'segment.ms': String(DAY_MS / 24) } },
  // One record per change, applied newest-wins per notification; kept longer than notify.web so an
  // inbox rebuilt from the topics finds the read marks of every notification it finds.
  { stream: 'notify.inbox-state', partitions: 6, config: retainedFor(30) },
  // The delivery trail: a record per stage decision, so at least as many as the channel topics.
  { stream: 'notify.status', partitions: 24, config: retainedFor(30) },
  // Never tombstoned: a delete must outlive the other prefix's compacted copy (docs/architecture.md).
  { stream: 'notify.erasure', partitions: 6, config: COMPACTED },
];

/** `make stack-init` applies the plan with at most this many partitions per topic. */
export const LOCAL_MAX_PARTITIONS = 6;

/** A stream's production partition count. */
export function declaredPartitions(stream: string): number {
  const declared = TOPIC_PLAN.find((d) => d.stream === stream);
  if (!declared) throw new Error(`${stream} is not in the topic plan`);
  return declared.partitions;
}

/** A stream's partition count on the local stack (tests and benches that make their own topics). */
export function localPartitions(stream: string): number {
  return Math.min(declaredPartitions(stream), LOCAL_MAX_PARTITIONS);
}

/** Retention of the topics a service owns besides the streams; one home for it. */
export const OWNED_TOPIC_CONFIG = {
  retry: retainedFor(7),
  deadLetter: retainedFor(30),
  hold: retainedFor(7),
} as const;

/**
 * Every consumer a service runs: the service's name (which names its retry and DLQ topics), the
 * stream and the consumer group (runService takes it from here). `tidings failover` moves every
 * group listed here by default: a consumer missing here is left where it is by a failover.
 */
export const CONSUMERS: readonly { service: string; stream: string; group: string }[] = [
  { service: 'router', stream: 'notify.event', group: 'router' },
  { service: 'router', stream: 'notify.user', group: 'router-users' },
  { service: 'router', stream: 'notify.preference-change', group: 'router-preferences' },
  { service: 'email', stream: 'notify.email', group: 'email' },
  { service: 'email', stream: 'notify.email-send', group: 'email-sender' },
  { service: 'email', stream: 'notify.suppression', group: 'email-suppressions' },
  { service: 'push', stream: 'notify.push', group: 'push' },
  { service: 'push', stream: 'notify.push-subscription', group: 'push-subscriptions' },
  { service: 'router', stream: 'notify.erasure', group: 'router-erasures' },
  { service: 'email', stream: 'notify.inbox-state', group: 'email-web-reads' },
  { service: 'email', stream: 'notify.erasure', group: 'email-erasures' },
  { service: 'push', stream: 'notify.erasure', group: 'push-erasures' },
  { service: 'bounce', stream: 'notify.user', group: 'bounce-people' },
  { service: 'bounce', stream: 'notify.erasure', group: 'bounce-erasures' },
  { service: 'bounce', stream: 'notify.bounce', group: 'bounce' },
  { service: 'bounce', stream: 'notify.status', group: 'bounce-sends' },
  // The inbox's groups are named after INBOX_CONSUMER_GROUP; these are its default's.
  { service: 'inbox', stream: 'notify.web', group: 'inbox' },
  { service: 'inbox', stream: 'notify.inbox-state', group: 'inbox-state' },
  { service: 'inbox', stream: 'notify.user', group: 'inbox-people' },
];

/** The group the plan names for `service` consuming `stream`, if it does. */
export function plannedGroup(service: string, stream: string): string | undefined {
  return CONSUMERS.find((c) => c.service === service && c.stream === stream)?.group;
}

/**
 * Every topic a planned group reads on a cluster holding `dcs`: its stream and the default retry
 * topics under every prefix, as the runtime subscribes them. Undefined for a group not planned.
 */
export function plannedGroupTopics(
  group: string,
  dcs: readonly string[],
  retryDelaysMs: readonly number[] = DEFAULT_RETRY_DELAYS_MS,
): string[] | undefined {
  const consumer = CONSUMERS.find((c) => c.group === group);
  if (!consumer) return undefined;
  const { service, stream } = consumer;
  return dcs.flatMap((dc) => [
    topicFor(dc, stream),
    ...retryDelaysMs.map((delay) => retryTopic(dc, stream, service, delay)),
  ]);
}

/** Where the router parks a chatty type's events: notify.event's schema, key and partitions. */
export function holdTopicOf(dc: string): string {
  return `${topicFor(dc, 'notify.event')}.router.held`;
}

/** Where bounce dead-letters unreadable reports with their raw bytes (not replayable). */
export function rawSmtpDeadLetterTopic(dc: string): string {
  return dlqTopic(dc, 'notify.bounce', 'bounce-smtp');
}

/**
 * Topics services write besides the streams and their consumers' retry and dead-letter topics:
 * the router's hold topic (notify.event's partitions, so per-key order holds) and bounce's raw
 * dead letters. `service` is the one that writes it: it refuses to start without it.
 */
export const OWNED_TOPICS: readonly {
  service: string;
  topic: (dc: string) => string;
  stream: string;
  partitions: number | 'stream';
  config: Readonly<Record<string, string>>;
}[] = [
  {
    service: 'router',
    topic: holdTopicOf,
    stream: 'notify.event',
    partitions: 'stream',
    config: OWNED_TOPIC_CONFIG.hold,
  },
  {
    service: 'bounce',
    topic: rawSmtpDeadLetterTopic,
    stream: 'notify.bounce',
    partitions: 1,
    config: OWNED_TOPIC_CONFIG.deadLetter,
  },
];

/** A consumer's retry topics (one per delay) and its DLQ under `dc`, with their retention. */
export function consumerOwnedTopics(
  dc: string,
  stream: string,
  service: string,
  retryDelaysMs: readonly number[],
): { topic: string; config: Readonly<Record<string, string>> }[] {
  return [
    ...retryDelaysMs.map((delay) => ({
      topic: retryTopic(dc, stream, service, delay),
      config: OWNED_TOPIC_CONFIG.retry,
    })),
    { topic: dlqTopic(dc, stream, service), config: OWNED_TOPIC_CONFIG.deadLetter },
  ];
}

/**
 * Every topic a consumer writes under its own `dc`, so the runtime checks them all at start: its
 * stream's local topic, the checkpoint topic, its retry topics and its DLQ.
 */
export function consumerWrites(
  dc: string,
  stream: string,
  service: string,
  retryDelaysMs: readonly number[],
): string[] {
  return [
    topicFor(dc, stream),
    topicFor(dc, CHECKPOINT_STREAM),
    ...consumerOwnedTopics(dc, stream, service, retryDelaysMs).map((t) => t.topic),
  ];
}

/**
 * Every topic `service` writes under `dc` by the plan: what each of its planned consumers writes
 * and the owned topics it writes; checked as a whole before the service starts, so one error names
 * every missing topic.
 */
export function serviceWrites(service: string, dc: string, retryDelaysMs: readonly number[]): string[] {
  const topics = [
    ...CONSUMERS.filter((c) => c.service === service).flatMap((c) =>
      consumerWrites(dc, c.stream, service, retryDelaysMs),
    ),
    ...OWNED_TOPICS.filter((o) => o.service === service).map((o) => o.topic(dc)),
  ];
  return [...new Set(topics)];
}

/**
 * The retry, dead-letter and hold topics one cluster should hold for `dcs`: a retry topic per
 * delay (the default RETRY_DELAYS, DEFAULT_RETRY_DELAYS_MS: a service run with other delays refuses
 * to start until they are declared) and a DLQ per consumer. A retry topic keeps its stream's
 * partitions, so retries keep per-key order.
 * `services` narrows them to those services' topics (a test datacenter running one service).
 */
export function ownedTopics(
  dcs: readonly string[],
  replicationFactor: number,
  {
    retryDelaysMs = DEFAULT_RETRY_DELAYS_MS,
    plan = TOPIC_PLAN,
    maxPartitions = Number.POSITIVE_INFINITY,
    services,
  }: {
    retryDelaysMs?: readonly number[];
    plan?: readonly TopicDeclaration[];
    maxPartitions?: number;
    services?: readonly string[];
  } = {},
): DesiredTopic[] {
  const partitionsOf = (stream: string) =>
    Math.min(plan.find((d) => d.stream === stream)?.partitions ?? 1, maxPartitions);
  const minInsync = replicationFactor >= 3 ? '2' : '1';
  const ours = ({ service }: { service: string }) => services === undefined || services.includes(service);
  const topic = (
    dc: string,
    name: string,
    stream: string,
    partitions: number,
    config: Readonly<Record<string, string>>,
  ) => ({
    topic: name,
    stream,
    dc,
    partitions,
    replicationFactor,
    config: { ...config, 'min.insync.replicas': minInsync },
  });
  return dcs.flatMap((dc) => [
    ...CONSUMERS.filter(ours).flatMap(({ service, stream }) =>
      consumerOwnedTopics(dc, stream, service, retryDelaysMs).map((t) =>
        topic(dc, t.topic, stream, partitionsOf(stream), t.config),
      ),
    ),
    ...OWNED_TOPICS.filter(ours).map((o) =>
      topic(
        dc,
        o.topic(dc),
        o.stream,
        o.partitions === 'stream' ? partitionsOf(o.stream) : o.partitions,
        o.config,
      ),
    ),
  ]);
}

export function isCompacted(stream: string): boolean {
  return TOPIC_PLAN.some((d) => d.stream === stream && d.config['cleanup.policy'] === 'compact');
}

export interface DesiredTopic {
  topic: string;
  stream: string;
  /** The datacenter whose prefix the topic has. */
  dc: string;
  partitions: number;
  replicationFactor: number;
  config: Record<string, string>;
}

/**
 * The topics one cluster should hold for `dcs` (every datacenter prefix). With 3 or more
 * replicas an acks=all write needs two of them, so losing one broker loses no acknowledged record.
 */
export function desiredTopics(
  dcs: readonly string[],
  replicationFactor: number,
  plan: readonly TopicDeclaration[] = TOPIC_PLAN,
  maxPartitions = Number.POSITIVE_INFINITY,
): DesiredTopic[] {
  if (!Number.isInteger(replicationFactor) || replicationFactor < 1) {
    throw new Error(`replication factor must be a positive integer, got ${replicationFactor}`);
  }
  const minInsync = replicationFactor >= 3 ? '2' : '1';
  return dcs.flatMap((dc) =>
    plan.map((d) => ({
      topic: topicFor(dc, d.stream),
      stream: d.stream,
      dc,
      partitions: Math.min(d.partitions, maxPartitions),
      replicationFactor,
      config: { ...d.config, 'min.insync.replicas': minInsync },
    })),
  );
}

export interface ExistingTopic {
  partitions: number;
  replicationFactor: number;
  /** Current values of every topic config, defaults included. */
  config: Record<string, string>;
  /** The configs set on the topic itself; a (non-incremental) alter must restate them or lose them. */
  overrides: Record<string, string>;
}

export interface TopicChange {
  topic: string;
  action: 'create' | 'alter' | 'ok';
  /** "retention.ms: 86400000 -> 604800000", one per config that differs. */
  changes: string[];
  /** Differences the plan does not fix (partitions, replication factor). */
  warnings: string[];
}

export function planTopic(desired: DesiredTopic, existing: ExistingTopic | undefined): TopicChange {
  const { topic } = desired;
  if (!existing) {
    const changes = [
      `partitions ${desired.partitions}, replication factor ${desired.replicationFactor}`,
      ...Object.entries(desired.config).map(([name, value]) => `${name}=${value}`),
    ];
    return { topic, action: 'create', changes, warnings: [] };
  }
  const changes = Object.entries(desired.config)
    .filter(([name, value]) => existing.config[name] !== value)
    .map(([name, value]) => `${name}: ${existing.config[name] ?? '(unset)'} -> ${value}`);
  const warnings: string[] = [];
  if (existing.partitions !== desired.partitions) {
    warnings.push(
      `has ${existing.partitions} partitions, declared ${desired.partitions}: not changed (more partitions remap keys)`,
    );
  }
  if (existing.replicationFactor !== desired.replicationFactor) {
    warnings.push(
      `has replication factor ${existing.replicationFactor}, declared ${desired.replicationFactor}: not changed (needs a reassignment)`,
    );
  }
  return { topic, action: changes.length > 0 ? 'alter' : 'ok', changes, warnings };
}

/** What the cluster has of `topics`; missing topics are absent from the map. */
export async function readTopics(
  admin: Admin,
  topics: readonly string[],
): Promise<Map<string, ExistingTopic>> {
  const present = new Set(await admin.listTopics());
  const wanted = topics.filter((t) => present.has(t));
  const found = new Map<string, ExistingTopic>();
  if (wanted.length === 0) return found;
  const [metadata, configs] = await Promise.all([
    admin.fetchTopicMetadata({ topics: wanted }),
    admin.describeConfigs({
      includeSynonyms: false,
      resources: wanted.map((name) => ({ type: ConfigResourceTypes.TOPIC, name })),
    }),
  ]);
  for (const t of metadata.topics) {
    const resource = configs.resources.find((r) => r.resourceName === t.name);
    const config: Record<string, string> = {};
    const overrides: Record<string, string> = {};
    for (const entry of resource?.configEntries ?? []) {
      config[entry.configName] = entry.configValue;
      if (entry.configSource === ConfigSource.TOPIC_CONFIG) {
        overrides[entry.configName] = entry.configValue;
      }
    }
    found.set(t.name, {
      partitions: t.partitions.length,
      replicationFactor: t.partitions[0]?.replicas.length ?? 0,
      config,
      overrides,
    });
  }
  return found;
}

/** Creates missing topics and sets declared configs; other overrides on a topic are kept. */
export async function applyTopicPlan(
  admin: Admin,
  desired: readonly DesiredTopic[],
  existing: ReadonlyMap<string, ExistingTopic>,
): Promise<TopicChange[]> {
  const changes = desired.map((d) => planTopic(d, existing.get(d.topic)));
  const create = desired.filter((d) => !existing.has(d.topic));
  if (create.length > 0) {
    await createTopicsWithLeaders(
      admin,
      create.map((d) => ({
        topic: d.topic,
        numPartitions: d.partitions,
        replicationFactor: d.replicationFactor,
        configEntries: Object.entries(d.config).map(([name, value]) => ({ name, value })),
      })),
    );
  }
  const alter = desired.filter((d) => changes.find((c) => c.topic === d.topic)?.action === 'alter');
  if (alter.length > 0) {
    await admin.alterConfigs({
      validateOnly: false,
      resources: alter.map((d) => ({
        type: ConfigResourceTypes.TOPIC,
        name: d.topic,
        configEntries: Object.entries({ ...existing.get(d.topic)?.overrides, ...d.config }).map(
          ([name, value]) => ({
            name,
            value,
          }),
        ),
      })),
    });
  }
  return changes;
}
