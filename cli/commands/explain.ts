/**
 * `tidings explain --event E --user U`: re-runs the router's pure decision for one person and one
 * event on the person's current state, and prints every gate with its verdict (not only the one
 * that closed), then what the router would decide now.
 *
 * The event is found in notify.event of every prefix (keyed by event id: one partition each,
 * bounded by --since); the person, the dedup ledger and the throttle counts come from the router's
 * own tables (--database, --router-schema), read-only; the routing settings from the same variables
 * the router reads (ROUTER_SUNSET_DAYS, ROUTER_EMIT_PUSH, CATEGORY_REGISTRY), so run it with the
 * router's environment.
 */
import type { Command } from 'commander';
import { DEFAULT_DATABASE_URL } from '../../libs/config/common.ts';
import { loadConfig } from '../../libs/config/load.ts';
import { createPool } from '../../libs/db/pool.ts';
import { partitionForKey } from '../../libs/kafka/key-partition.ts';
import { offsetsAt } from '../../libs/kafka/offsets-at-time.ts';
import { readRanges } from '../../libs/kafka/topic-reader.ts';
import { topicsAcrossDcs } from '../../libs/kafka/topics.ts';
import { createSerde } from '../../libs/schemas/serde.ts';
import type { NotifyEvent } from '../../libs/schemas/types.generated.ts';
import { loadCategoryRegistry } from '../../services/router/categories.ts';
import { chattyCapOf, routerSpec, routingPolicyOf } from '../../services/router/config.ts';
import { batchKeys } from '../../services/router/prefetch.ts';
import { type DeliveryContext, explainRecipient, routeToRecipient } from '../../services/router/route.ts';
import { createRouterStore } from '../../services/router/store.ts';
import { createThrottleLedger } from '../../services/router/throttle.ts';
import { CliError, contextOf, EXIT, usageError } from '../context.ts';
import { progress, withKafka } from '../kafka-session.ts';
import { pointInTime } from '../time-option.ts';

interface ExplainOptions {
  event?: string;
  user?: string;
  since: string;
  database: string;
  routerSchema: string;
}

export function explainCommand(program: Command): void {
  program
    .command('explain')
    .description("re-run the router's decision for one event and one person, gate by gate")
    .option('--event <id>', 'the event')
    .option('--user <id>', 'the person')
    .option(
      '--since <time>',
      'oldest time to look for the event (ISO-8601 with a zone, or a duration back)',
      '168h',
    )
    .option('--database <url>', "the router's database", process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL)
    .option('--router-schema <name>', "the router's Postgres schema", process.env.DATABASE_SCHEMA ?? 'router')
    .action(async (options: ExplainOptions, command: Command) => {
      const ctx = contextOf(command);
      if (options.event === undefined || options.user === undefined)
        throw usageError('--event and --user are both required');
      const eventId = options.event;
      const userId = options.user;
      const since = pointInTime(options.since, '--since');
      const routerConfig = routerSettings();
      const categories = await loadCategoryRegistry(routerConfig.CATEGORY_REGISTRY);

      const event = await findEvent(ctx, eventId, since);
      const category = categories.get(event.category);
      const pool = createPool({
        url: options.database,
        schema: options.routerSchema,
        applicationName: 'tidings-explain',
        max: 2,
      });
      try {
        const store = createRouterStore(pool);
        const keys = batchKeys([{ ...event, recipients: [userId] }], categories, chattyCapOf(routerConfig));
        const loaded = await store.loadBatch(keys);
        const { processed } = loaded;
        const now = Date.now();
        const rows: Record<string, string>[] = [
          gate(
            'event',
            'duplicate-event',
            processed.length > 0,
            processed.length > 0 ? 'already routed: a replay skips it' : 'not routed yet',
          ),
          gate(
            'event',
            'expired',
            event.expires_at !== null && event.expires_at <= now,
            event.expires_at === null ? 'no expiry' : `expires ${new Date(event.expires_at).toISOString()}`,
          ),
          gate(
            'event',
            'unknown-category',
            category === undefined,
            category
              ? `category ${category.name}`
              : `category ${event.category} is not in the registry: dead-lettered`,
          ),
          gate(
            'event',
            'recipient-listed',
            !event.recipients.includes(userId),
            event.recipients.includes(userId)
              ? `${userId} is a recipient`
              : `${userId} is not among the event's recipients`,
          ),
        ];
        if (category) {
          const delivery: DeliveryContext = {
            throttle: createThrottleLedger(loaded.throttleCounts),
            policy: routingPolicyOf(routerConfig),
            origin: { dc: ctx.dc, producer: 'tidings-explain' },
            now,
          };
          const recipient = loaded.recipients.get(userId);
          for (const v of explainRecipient(event, category, userId, recipient, delivery))
            rows.push(gate(v.channel ?? 'person', v.gate, v.verdict === 'closed', v.detail));
          // A fresh ledger: explainRecipient's throttle question must not count against the decision.
          const decisions = routeToRecipient(event, category, userId, recipient, {
            ...delivery,
            throttle: createThrottleLedger(loaded.throttleCounts),
          });
          for (const d of decisions)
            rows.push({
              scope: d.channel,
              gate: 'decision',
              verdict: d.outcome,
              detail: d.outcome === 'skipped' ? d.reason : '',
            });
        }
        progress(
          'chatty-type holds depend on the whole type’s volume in its window and are not re-run; `tidings trace --event` shows them',
        );
        ctx.print(rows, ['scope', 'gate', 'verdict', 'detail']);
      } finally {
        await pool.end();
      }
    });
}

function gate(scope: string, name: string, closed: boolean, detail: string): Record<string, string> {
  return { scope, gate: name, verdict: closed ? 'closed' : 'pass', detail };
}

function routerSettings() {
  try {
    return loadConfig(routerSpec, process.env);
  } catch (error) {
    throw usageError(`the router's settings in this environment are invalid: ${(error as Error).message}`);
  }
}

async function findEvent(
  ctx: ReturnType<typeof contextOf>,
  eventId: string,
  since: number,
): Promise<NotifyEvent> {
  const serde = createSerde({ registryUrl: ctx.registryUrl });
  const found = await withKafka(ctx, async (kafka, admin) => {
    const present = new Set(await admin.listTopics());
    const topics = topicsAcrossDcs(ctx.knownDcs, 'notify.event').filter((t) => present.has(t));
    const starts = await offsetsAt(admin, topics, since);
    const ranges = [];
    for (const topic of topics) {
      const bounds = await admin.fetchTopicOffsets(topic);
      const partition = partitionForKey(eventId, bounds.length);
      const b = bounds.find((x) => x.partition === partition)!;
      const from = Math.max(Number(b.low), starts.get(`${topic}:${partition}`) ?? Number(b.high));
      ranges.push({ topic, partition, from, to: Number(b.high) });
    }
    let value: Buffer | null = null;
    await readRanges(kafka, {
      ranges,
      timeoutMs: 60_000,
      onRecord: ({ message }) => {
        if (message.key?.toString('utf8') !== eventId || message.value === null) return true;
        value = message.value;
        return false;
      },
    });
    return value as Buffer | null;
  });
  if (found === null)
    throw new CliError(
      `event ${eventId} not found in notify.event since ${new Date(since).toISOString()} (try an earlier --since)`,
      EXIT.problem,
    );
  return serde.decode('notify.event', found);
}
