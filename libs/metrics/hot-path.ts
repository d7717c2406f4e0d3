/**
 * Metrics for paths that run once per record or more often. prom-client checks and hashes the
 * labels on every observation and increment, which cost the consumer runtime and the router a few
 * per cent of their CPU each; these do that work once per label set. A scrape shows them exactly
 * as prom-client shows its own.
 */
import { Counter, type CounterConfiguration, type MetricValueWithName, type Registry } from 'prom-client';

export interface HotHistogramChild {
  observe(value: number): void;
}

export interface HotHistogramOptions {
  name: string;
  help: string;
  /** The one label that tells the series apart (e.g. the consumer group). */
  labelName: string;
  /** Upper bounds, ascending. */
  buckets: readonly number[];
}

type SharedValue = MetricValueWithName<string> & { sharedLabels: Record<string, string> };

/** What a registry reads from a metric. */
interface MetricData<V> {
  name: string;
  help: string;
  type: 'histogram';
  values: V[];
  aggregator: 'sum';
}

interface Series {
  /** Observations per bucket, not cumulative; the last is +Inf. */
  counts: number[];
  sum: number;
  count: number;
}

/**
 * A histogram whose label set is resolved once, to a child whose `observe` only finds the bucket.
 * It goes on a prom-client Registry like any metric (the registry reads `get()` and
 * `getForPromString()`).
 */
export class HotHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  private readonly labelName: string;
  private readonly buckets: readonly number[];
  private readonly series = new Map<string, Series>();

  constructor({ name, help, labelName, buckets }: HotHistogramOptions) {
    this.name = name;
    this.help = help;
    this.labelName = labelName;
    this.buckets = buckets;
  }

  /** The series of one label value; its observations cost no label handling. */
  child(labelValue: string): HotHistogramChild {
    let series = this.series.get(labelValue);
    if (!series) {
      series = { counts: new Array<number>(this.buckets.length + 1).fill(0), sum: 0, count: 0 };
      this.series.set(labelValue, series);
    }
    const { buckets } = this;
    const s = series;
    return {
      observe(value) {
        let i = 0;
        while (i < buckets.length && value > buckets[i]!) i++;
        s.counts[i]!++;
        s.sum += value;
        s.count++;
      },
    };
  }

  /** What the registry's JSON shows: each value with all its labels. */
  async get(): Promise<MetricData<MetricValueWithName<string>>> {
    const metric = await this.getForPromString();
    return {
      ...metric,
      values: metric.values.map(({ sharedLabels, labels, ...value }) => ({
        ...value,
        labels: { ...labels, ...sharedLabels },
      })),
    };
  }

  /**
   * What the registry's text format reads. The series' own label goes in `sharedLabels`, after
   * the registry's default labels, where prom-client places a Histogram's.
   */
  getForPromString(): Promise<MetricData<SharedValue>> {
    const values: SharedValue[] = [];
    for (const [labelValue, { counts, sum, count }] of this.series) {
      const sharedLabels = { [this.labelName]: labelValue };
      let cumulative = 0;
      for (let i = 0; i <= this.buckets.length; i++) {
        cumulative += counts[i]!;
        values.push({
          labels: { le: i < this.buckets.length ? this.buckets[i]! : '+Inf' },
          sharedLabels,
          value: cumulative,
          metricName: `${this.name}_bucket`,
        });
      }
      values.push({ labels: {}, sharedLabels, value: sum, metricName: `${this.name}_sum` });
      values.push({ labels: {}, sharedLabels, value: count, metricName: `${this.name}_count` });
    }
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      values,
      aggregator: this.aggregator,
    });
  }

  reset(): void {
    for (const series of this.series.values()) {
      series.counts.fill(0);
      series.sum = 0;
      series.count = 0;
    }
  }

  /** Puts it on `registry`, or returns the one already there under its name. */
  static on(registry: Registry, options: HotHistogramOptions): HotHistogram {
    const existing = registry.getSingleMetric(options.name) as unknown as HotHistogram | undefined;
    if (existing) return existing;
    const histogram = new HotHistogram(options);
    registry.registerMetric(histogram as never);
    return histogram;
  }
}

/** A counter whose increments are tallied until it is read; see tallied(). */
export interface TalliedCounter {
  /** One more, for the label values given in the order of labelNames. */
  inc(...labelValues: string[]): void;
}

/**
 * A prom-client counter whose increments are a look-up in a map of tallies, added to the counter
 * when it is read (its collect hook, run on every scrape), so what a scrape shows is exact.
 */
export function tallied<L extends string>(
  registry: Registry,
  config: Omit<CounterConfiguration<L>, 'registers' | 'collect'> & { labelNames: readonly L[] },
): TalliedCounter {
  const tallies = new Map<string, { labels: Partial<Record<L, string>>; count: number }>();
  new Counter<L>({
    ...config,
    registers: [registry],
    collect() {
      for (const tally of tallies.values()) {
        if (tally.count === 0) continue;
        this.inc(tally.labels, tally.count);
        tally.count = 0;
      }
    },
  });
  return {
    inc(...labelValues) {
      const key = labelValues.join('\u0000');
      let tally = tallies.get(key);
      if (!tally) {
        const labels: Partial<Record<L, string>> = {};
        config.labelNames.forEach((name, i) => {
          labels[name] = labelValues[i];
        });
        tally = { labels, count: 0 };
        tallies.set(key, tally);
      }
      tally.count++;
    },
  };
}
