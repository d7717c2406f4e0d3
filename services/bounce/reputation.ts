/**
 * Bounce and complaint rates per sending domain, the numbers mailbox providers judge us by.
 *
 * Bounce never sees the sends, only what went wrong, so a rate here is reports within a sliding
 * window over the volume a domain is expected to send in that window (REPUTATION_EXPECTED_SENDS).
 * That is an estimate on purpose: it alerts without a dependency on the sender. The exact rate is a
 * recording rule away, from the counters below and the sender's own send counter:
 *   sum by (sending_domain) (rate(tidings_bounce_domain_reports_total{kind="hard"}[1d]))
 *     / sum by (sending_domain) (rate(<sends counter>[1d]))
 * Hard bounces count towards the bounce rate (soft ones are the receiver's trouble, and SES counts
 * them the same way), complaints towards the complaint rate. Crossing a threshold logs one alert;
 * dropping below it again logs a recovery.
 *
 * The sending domain of an SMTP report is the From of the returned message: text its writer chose.
 * So a domain is tracked by name only if it is one of `domains` (REPUTATION_DOMAINS, our own
 * sending domains), when those are configured; anything else is "other". And a domain's slot is
 * freed once its window holds no report and it is not alerting, so forged names cannot keep the
 * `maxDomains` slots and push real domains into "other".
 */
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { BounceKind } from '../../libs/schemas/types.generated.ts';

export interface ReputationOptions {
  readonly windowMs: number;
  /** Sends expected per domain per window: the denominator of the estimated rates. */
  readonly expectedSends: number;
  /** Alert thresholds as fractions, e.g. 0.05 and 0.001. */
  readonly bounceAlert: number;
  readonly complaintAlert: number;
  /** Domains tracked by name; further ones are counted as "other" so labels stay bounded. */
  readonly maxDomains: number;
  /** When given, the only domains tracked by name (our own sending domains). */
  readonly domains?: readonly string[];
  readonly registry: Registry;
  readonly log: Logger;
  readonly now: () => number;
}

type Measure = 'bounce' | 'complaint';

export interface Reputation {
  observe(sendingDomain: string | null, kind: BounceKind): void;
  /** Estimated rate of a domain now. */
  rate(sendingDomain: string, measure: Measure): number;
}

export function createReputation(options: ReputationOptions): Reputation {
  const { log, now } = options;
  const known = options.domains ? new Set(options.domains.map((d) => d.toLowerCase())) : null;
  const events = new Map<string, { bounce: number[]; complaint: number[] }>();
  const alerting = new Set<string>();

  const reports = new Counter({
    name: 'tidings_bounce_domain_reports_total',
    help: 'notify.bounce records consumed, by sending domain and kind (hard, soft, complaint)',
    labelNames: ['sending_domain', 'kind'],
    registers: [options.registry],
  });
  new Gauge({
    name: 'tidings_bounce_domain_rate',
    help: 'estimated rate per sending domain over the window: hard bounces or complaints / REPUTATION_EXPECTED_SENDS',
    labelNames: ['sending_domain', 'measure'],
    registers: [options.registry],
    collect() {
      this.reset();
      for (const domain of events.keys()) {
        for (const measure of ['bounce', 'complaint'] as const) {
          this.set({ sending_domain: domain, measure }, rate(domain, measure));
          // A quiet domain recovers as its window slides, without a new report to notice it.
          check(domain, measure);
        }
      }
    },
  });
  const alertGauge = new Gauge({
    name: 'tidings_bounce_domain_alert',
    help: '1 while a sending domain is over its bounce or complaint threshold',
    labelNames: ['sending_domain', 'measure'],
    registers: [options.registry],
  });

  function domainOf(sendingDomain: string | null): string {
    const domain = sendingDomain?.toLowerCase() ?? 'unknown';
    if (known && domain !== 'unknown' && !known.has(domain)) return 'other';
    if (events.has(domain)) return domain;
    forgetQuiet();
    return events.size < options.maxDomains ? domain : 'other';
  }

  /** Frees the slots of domains with nothing in their window and no alert standing. */
  function forgetQuiet(): void {
    for (const domain of [...events.keys()]) {
      const quiet = recent(domain, 'bounce').length === 0 && recent(domain, 'complaint').length === 0;
      if (quiet && !alerting.has(`${domain}|bounce`) && !alerting.has(`${domain}|complaint`)) {
        events.delete(domain);
        // Its series go too, or names that came and went would grow the label set without bound.
        for (const measure of ['bounce', 'complaint'] as const)
          alertGauge.remove({ sending_domain: domain, measure });
        for (const kind of ['hard', 'soft', 'complaint'] as const)
          reports.remove({ sending_domain: domain, kind });
      }
    }
  }

  function recent(domain: string, measure: Measure): number[] {
    const entry = events.get(domain);
    if (!entry) return [];
    const since = now() - options.windowMs;
    entry[measure] = entry[measure].filter((t) => t > since);
    return entry[measure];
  }

  function rate(domain: string, measure: Measure): number {
    return recent(domain, measure).length / options.expectedSends;
  }

  function check(domain: string, measure: Measure): void {
    const value = rate(domain, measure);
    const threshold = measure === 'bounce' ? options.bounceAlert : options.complaintAlert;
    const key = `${domain}|${measure}`;
    const over = value >= threshold;
    alertGauge.set({ sending_domain: domain, measure }, over ? 1 : 0);
    if (over && !alerting.has(key)) {
      alerting.add(key);
      log.error(
        {
          alert: 'reputation',
          sending_domain: domain,
          measure,
          rate: value,
          threshold,
          window_ms: options.windowMs,
          expected_sends: options.expectedSends,
        },
        `${measure} rate of ${domain} is over its threshold: mailbox providers may throttle or block it`,
      );
    } else if (!over && alerting.delete(key)) {
      log.info(
        { sending_domain: domain, measure, rate: value, threshold },
        `${measure} rate of ${domain} recovered`,
      );
    }
  }

  return {
    observe(sendingDomain, kind) {
      const domain = domainOf(sendingDomain);
      reports.inc({ sending_domain: domain, kind });
      const entry = events.get(domain) ?? { bounce: [], complaint: [] };
      events.set(domain, entry);
      const measure: Measure | null = kind === 'hard' ? 'bounce' : kind === 'complaint' ? 'complaint' : null;
      if (measure) entry[measure].push(now());
      check(domain, 'bounce');
      check(domain, 'complaint');
    },
    rate,
  };
}
