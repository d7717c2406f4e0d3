/**
 * The start-up check that every topic a service writes exists. Services never create topics:
 * `tidings topics apply` does, from the topic plan, so a missing one means the plan was not
 * applied (or a service runs with retry delays the plan does not declare), and the service must
 * refuse to start rather than fail record by record, or silently for checkpoints.
 */
import type { Admin } from 'kafkajs';
import { DEFAULT_RETRY_DELAYS_MS } from './retry-policy.ts';
import { formatDelay } from './topics.ts';

export class MissingTopicsError extends Error {
  readonly missing: readonly string[];
  constructor(message: string, missing: readonly string[]) {
    super(message);
    this.name = 'MissingTopicsError';
    this.missing = missing;
  }
}

export interface TopicCheckOptions {
  /** The datacenter whose cluster this is: the fix names it. */
  dc: string;
  /** The RETRY_DELAYS the service runs with: topics for other delays than the plan's are not applied. */
  retryDelaysMs: readonly number[];
}

/** Throws one MissingTopicsError naming every topic of `wanted` not in `present`, and the fix. */
export function checkTopics(
  present: ReadonlySet<string>,
  wanted: readonly string[],
  { dc, retryDelaysMs }: TopicCheckOptions,
): void {
  const missing = [...new Set(wanted)].filter((t) => !present.has(t));
  if (missing.length === 0) return;
  const delays = (ms: readonly number[]) => ms.map(formatDelay).join(',');
  const planned =
    retryDelaysMs.length === DEFAULT_RETRY_DELAYS_MS.length &&
    retryDelaysMs.every((d, i) => d === DEFAULT_RETRY_DELAYS_MS[i]);
  const undeclared = planned
    ? ''
    : `; RETRY_DELAYS is ${delays(retryDelaysMs) || '(none)'}, not the plan's ${delays(DEFAULT_RETRY_DELAYS_MS)}:` +
      ' the plan declares retry topics for those only (DEFAULT_RETRY_DELAYS_MS, libs/kafka/retry-policy.ts),' +
      ' so declare these there and apply again, or run with the default RETRY_DELAYS';
  throw new MissingTopicsError(
    `topics missing on this cluster: ${missing.join(', ')}; create them with: tidings topics apply --dc ${dc}${undeclared}`,
    missing,
  );
}

/** Lists the cluster's topics and checks `wanted` against them; returns what is there. */
export async function requireTopics(
  admin: Admin,
  wanted: readonly string[],
  options: TopicCheckOptions,
): Promise<Set<string>> {
  const present = new Set(await admin.listTopics());
  checkTopics(present, wanted, options);
  return present;
}
