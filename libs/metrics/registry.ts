/**
 * One prom-client Registry per process, passed to whatever records metrics, rather than the
 * library's global registry: tests get a fresh one each and nothing registers behind our back.
 * The helpers put a metric on that registry; label names given as a literal array type its labels.
 */
import {
  Counter,
  type CounterConfiguration,
  collectDefaultMetrics,
  Gauge,
  type GaugeConfiguration,
  Histogram,
  type HistogramConfiguration,
  Registry,
} from 'prom-client';

export interface RegistryOptions {
  /** Labels added to every series, e.g. { service: 'router' }. */
  defaultLabels?: Record<string, string>;
}

/** A registry with Node's default process metrics (CPU, memory, event loop lag, GC) on it. */
export function createRegistry({ defaultLabels }: RegistryOptions = {}): Registry {
  const registry = new Registry();
  if (defaultLabels) registry.setDefaultLabels(defaultLabels);
  collectDefaultMetrics({ register: registry });
  return registry;
}

export function counter<L extends string = string>(
  registry: Registry,
  config: Omit<CounterConfiguration<L>, 'registers'>,
): Counter<L> {
  return new Counter<L>({ ...config, registers: [registry] });
}

export function gauge<L extends string = string>(
  registry: Registry,
  config: Omit<GaugeConfiguration<L>, 'registers'>,
): Gauge<L> {
  return new Gauge<L>({ ...config, registers: [registry] });
}

export function histogram<L extends string = string>(
  registry: Registry,
  config: Omit<HistogramConfiguration<L>, 'registers'>,
): Histogram<L> {
  return new Histogram<L>({ ...config, registers: [registry] });
}
