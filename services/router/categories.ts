/**
 * The category registry: what each notification category may do, read from a JSON file and
 * validated once at start-up. Every problem in the file is reported in one error, each naming the
 * category and the field, so an operator fixes a broken registry in one round.
 *
 * File format (snake_case, like the records it shapes):
 *   { "categories": { "<name>": {
 *       "priority": 1,                        lower is more important
 *       "channels": { "web": "always", "email": "on", "push": "off" },
 *       "transactional": false,               optional; never bundled, never sunset, never throttled
 *       "email_delivery": "at_most_once",     optional; what the email sender does with a mail whose
 *                                             SMTP outcome a crash left unknown: at_least_once (the
 *                                             default) sends it again with the same Message-ID,
 *                                             at_most_once never does; transactional mail is always
 *                                             at_least_once
 *       "bundle_key": "edit-user-talk",       optional; null or absent means never bundled
 *       "throttle": { "max": 10, "per": "1h" },  optional; per recipient, excess folded into the web inbox
 *       "description": "..."                  optional, for people reading the file
 *   } } }
 * A channel left out of "channels" is never used for the category, whatever a person prefers.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseDuration } from '../../libs/config/duration.ts';
import type { Channel, EmailDelivery } from '../../libs/schemas/types.generated.ts';

/**
 * always: on and cannot be turned off (Echo's talk-page message on the web);
 * on: on unless the person turns it off; off: only for people who turn it on.
 */
export type ChannelMode = 'always' | 'on' | 'off';

export interface ThrottleRule {
  /** At most this many notifications of the category per recipient and window reach email and push. */
  readonly max: number;
  readonly windowMs: number;
}

export interface Category {
  readonly name: string;
  readonly priority: number;
  /** The channels the category can use, in the order web, email, push. */
  readonly channels: ReadonlyMap<Channel, ChannelMode>;
  readonly transactional: boolean;
  /** Travels on notify.email and notify.email-send: the sender's choice for a mail a crash left unconfirmed. */
  readonly emailDelivery: EmailDelivery;
  readonly bundleKey: string | null;
  readonly throttle: ThrottleRule | null;
}

export type CategoryRegistry = ReadonlyMap<string, Category>;

export const DEFAULT_REGISTRY_PATH = fileURLToPath(new URL('./categories.json', import.meta.url));

export class CategoryRegistryError extends Error {
  readonly problems: readonly string[];
  constructor(source: string, problems: readonly string[]) {
    const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`;
    super(`invalid category registry ${source} (${count}):\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'CategoryRegistryError';
    this.problems = problems;
  }
}

const CHANNELS: readonly Channel[] = ['web', 'email', 'push'];
const CHANNEL_MODES: readonly ChannelMode[] = ['always', 'on', 'off'];
const CATEGORY_NAME = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;
const CATEGORY_FIELDS = [
  'description',
  'priority',
  'channels',
  'transactional',
  'email_delivery',
  'bundle_key',
  'throttle',
];
const EMAIL_DELIVERIES: readonly EmailDelivery[] = ['at_least_once', 'at_most_once'];
const THROTTLE_FIELDS = ['max', 'per'];

type Report = (field: string, message: string) => void;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Unknown fields are errors: a misspelt "transactionl" must not silently mean "not transactional". */
function reportUnknownFields(
  object: Record<string, unknown>,
  known: readonly string[],
  prefix: string,
  report: Report,
) {
  for (const field of Object.keys(object)) {
    if (!known.includes(field))
      report(`${prefix}${field}`, `unknown field; expected one of ${known.join(', ')}`);
  }
}

function readPriority(raw: unknown, report: Report): number {
  if (typeof raw === 'number' && Number.isSafeInteger(raw) && raw >= 0) return raw;
  report('priority', `expected an integer >= 0, got ${JSON.stringify(raw)}`);
  return 0;
}

function readChannels(raw: unknown, report: Report): Map<Channel, ChannelMode> {
  const channels = new Map<Channel, ChannelMode>();
  if (!isObject(raw)) {
    report('channels', 'expected an object such as {"web": "on", "email": "off"}');
    return channels;
  }
  reportUnknownFields(raw, CHANNELS, 'channels.', report);
  for (const channel of CHANNELS) {
    const mode = raw[channel];
    if (mode === undefined) continue;
    if (CHANNEL_MODES.includes(mode as ChannelMode)) channels.set(channel, mode as ChannelMode);
    else
      report(
        `channels.${channel}`,
        `expected one of ${CHANNEL_MODES.join(', ')}, got ${JSON.stringify(mode)}`,
      );
  }
  if (Object.keys(raw).length === 0) report('channels', 'names no channel; a category needs at least one');
  return channels;
}

function readBoolean(raw: unknown, field: string, report: Report): boolean {
  if (raw === undefined) return false;
  if (typeof raw === 'boolean') return raw;
  report(field, `expected true or false, got ${JSON.stringify(raw)}`);
  return false;
}

function readEmailDelivery(raw: unknown, report: Report): EmailDelivery {
  if (raw === undefined) return 'at_least_once';
  if (EMAIL_DELIVERIES.includes(raw as EmailDelivery)) return raw as EmailDelivery;
  report('email_delivery', `expected one of ${EMAIL_DELIVERIES.join(', ')}, got ${JSON.stringify(raw)}`);
  return 'at_least_once';
}

function readBundleKey(raw: unknown, report: Report): string | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw === 'string' && raw.trim() !== '') return raw;
  report('bundle_key', `expected a non-empty string or null, got ${JSON.stringify(raw)}`);
  return null;
}

function readThrottle(raw: unknown, report: Report): ThrottleRule | null {
  if (raw === undefined || raw === null) return null;
  if (!isObject(raw)) {
    report('throttle', 'expected an object such as {"max": 10, "per": "1h"}');
    return null;
  }
  reportUnknownFields(raw, THROTTLE_FIELDS, 'throttle.', report);
  const { max, per } = raw;
  const validMax = typeof max === 'number' && Number.isSafeInteger(max) && max >= 1;
  if (!validMax) report('throttle.max', `expected an integer >= 1, got ${JSON.stringify(max)}`);
  const windowMs = typeof per === 'string' ? parseDuration(per) : undefined;
  const validWindow = windowMs !== undefined && windowMs > 0;
  if (!validWindow)
    report('throttle.per', `expected a duration such as "30m" or "1h", got ${JSON.stringify(per)}`);
  return validMax && validWindow ? { max, windowMs } : null;
}

/** Rules across fields: what transactional and throttled categories need to keep their promises. */
function checkConsistency(category: Category, report: Report) {
  if (category.transactional && category.bundleKey !== null)
    report('bundle_key', 'a transactional category is never bundled; remove bundle_key');
  if (category.transactional && category.throttle !== null)
    report('throttle', 'a transactional category is never throttled; remove throttle');
  if (category.transactional && category.emailDelivery === 'at_most_once')
    report(
      'email_delivery',
      'transactional mail is always at_least_once (never lost at a crash); remove email_delivery',
    );
  if (category.throttle !== null && !category.channels.has('web'))
    report('throttle', 'a throttled category needs the web channel: the excess is folded into the web inbox');
}

function readCategory(name: string, raw: unknown, report: Report): Category | undefined {
  if (!CATEGORY_NAME.test(name))
    report('name', 'expected lower-case words joined by "-", e.g. edit-user-talk');
  if (!isObject(raw)) {
    report('', 'expected an object');
    return undefined;
  }
  reportUnknownFields(raw, CATEGORY_FIELDS, '', report);
  if (raw.description !== undefined && typeof raw.description !== 'string')
    report('description', 'expected a string');
  const category: Category = {
    name,
    priority: readPriority(raw.priority, report),
    channels: readChannels(raw.channels, report),
    transactional: readBoolean(raw.transactional, 'transactional', report),
    emailDelivery: readEmailDelivery(raw.email_delivery, report),
    bundleKey: readBundleKey(raw.bundle_key, report),
    throttle: readThrottle(raw.throttle, report),
  };
  checkConsistency(category, report);
  return category;
}

/** Validates a parsed registry file; `source` names it in the error. */
export function parseCategoryRegistry(raw: unknown, source: string): CategoryRegistry {
  const problems: string[] = [];
  if (!isObject(raw) || !isObject(raw.categories)) {
    throw new CategoryRegistryError(source, ['expected {"categories": {"<name>": {...}}} at the top level']);
  }
  for (const field of Object.keys(raw)) {
    if (field !== 'categories') problems.push(`unknown top-level field "${field}"; expected only categories`);
  }
  const registry = new Map<string, Category>();
  for (const [name, entry] of Object.entries(raw.categories)) {
    const report: Report = (field, message) =>
      problems.push(`category "${name}": ${field ? `${field}: ` : ''}${message}`);
    const category = readCategory(name, entry, report);
    if (category) registry.set(name, category);
  }
  if (registry.size === 0 && problems.length === 0)
    problems.push('no categories: every event would be dead-lettered');
  if (problems.length > 0) throw new CategoryRegistryError(source, problems);
  return registry;
}

/** Reads and validates the registry file at start-up; throws CategoryRegistryError naming every problem. */
export async function loadCategoryRegistry(path: string = DEFAULT_REGISTRY_PATH): Promise<CategoryRegistry> {
  const text = await readFile(path, 'utf8');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new CategoryRegistryError(path, [`not valid JSON: ${(err as Error).message}`]);
  }
  return parseCategoryRegistry(raw, path);
}
