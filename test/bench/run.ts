/**
 * `make bench`: runs every benchmark in this folder against the real local stack and writes one
 * JSON report per benchmark to test/bench/reports/. Every benchmark measures its subject as a ratio
 * against a baseline measured in the same run, so numbers from different machines compare.
 * BENCH_ONLY=pipe runs one benchmark.
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';

const here = import.meta.dirname;
const reportsDir = join(here, 'reports');
const only = process.env.BENCH_ONLY;

const files = (await readdir(here)).filter((f) => f.endsWith('.bench.ts')).sort();
await mkdir(reportsDir, { recursive: true });
for (const file of files) {
  const name = file.replace(/\.bench\.ts$/, '');
  if (only && only !== name) continue;
  console.log(`\n== ${name}`);
  const mod = (await import(join(here, file))) as { run(): Promise<Record<string, unknown>> };
  const result = await mod.run();
  const report = {
    benchmark: name,
    at: new Date().toISOString(),
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model, memory_gib: Math.round(totalmem() / 2 ** 30) },
    node: process.version,
    ...result,
  };
  const out = join(reportsDir, `${name}.json`);
  await writeFile(out, `${JSON.stringify(report, null, 2)}\n`);
  console.log(JSON.stringify(result, null, 2));
  console.log(`report: ${out}`);
}
