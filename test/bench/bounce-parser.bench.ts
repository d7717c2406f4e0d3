/**
 * The bounce report parser over a pathological corpus (test/fuzz/pathological.ts: inputs that made
 * the old regexes retry from every position), at 64 KB, 512 KB and 4 MB (BOUNCE_SMTP_MAX_BYTES).
 * Reported: the median parse time per 64 KB of each input at each size, the worst of them, and
 * per input the ratio of its per-64 KB time at 4 MB to that at 64 KB. A linear parser keeps that
 * ratio near 1 (noise and GC push it somewhat either way); a quadratic one multiplies it by 64.
 * The baseline is the same parser on a real DSN of the fixture corpus, padded to the same size.
 * Needs no stack: `BENCH_ONLY=bounce-parser node_modules/.bin/node test/bench/run.ts`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseReport } from '../../services/bounce/report-parser.ts';
import { PATHOLOGICAL } from '../fuzz/pathological.ts';
import { median, round } from './stats.ts';

const KB64 = 64 * 1024;
const SIZES = [KB64, 8 * KB64, 64 * KB64];
const REPEATS = 5;

const DSN = readFileSync(
  join(import.meta.dirname, '..', 'fixtures', 'bounces', 'postfix-user-unknown.eml'),
  'utf8',
);
/** A genuine report with a long returned message: what real 4 MB reports look like. */
const padded = (bytes: number) =>
  `${DSN}\r\n${'A quite ordinary line of returned text.\r\n'.repeat(Math.ceil(bytes / 41))}`;

async function msPer64k(make: (bytes: number) => string, bytes: number): Promise<number> {
  const raw = Buffer.from(make(bytes));
  await parseReport(raw); // warm-up: the first parse of a shape pays for compiling the code paths
  const times: number[] = [];
  for (let i = 0; i < REPEATS; i++) {
    const start = performance.now();
    await parseReport(raw);
    times.push(performance.now() - start);
  }
  return median(times) / (raw.length / KB64);
}

export async function run(): Promise<Record<string, unknown>> {
  const inputs: Record<string, (bytes: number) => string> = { 'baseline-real-dsn': padded, ...PATHOLOGICAL };
  const perInput: Record<string, unknown> = {};
  let worst = { input: '', size_kb: 0, ms_per_64kb: 0 };
  for (const [name, make] of Object.entries(inputs)) {
    const bySize: Record<string, number> = {};
    for (const size of SIZES) {
      const ms = await msPer64k(make, size);
      bySize[`${size / 1024}kb`] = round(ms);
      if (name !== 'baseline-real-dsn' && ms > worst.ms_per_64kb)
        worst = { input: name, size_kb: size / 1024, ms_per_64kb: round(ms) };
    }
    const first = bySize[`${SIZES[0]! / 1024}kb`]!;
    const last = bySize[`${SIZES.at(-1)! / 1024}kb`]!;
    perInput[name] = { ms_per_64kb: bySize, growth_4mb_over_64kb: round(last / Math.max(first, 0.001), 2) };
    console.log(name, JSON.stringify(perInput[name]));
  }
  return {
    what: 'bounce report parser: median ms per 64 KB of pathological input at 64 KB, 512 KB and 4 MB',
    repeats: REPEATS,
    worst,
    inputs: perInput,
  };
}
