/**
 * CPU time spent by this process and by Postgres backends, for benchmarks whose wall-clock rate
 * depends on how busy the machine is: CPU per unit of work says what the code costs whatever else
 * runs. Postgres backends are read from /proc, so only when Postgres runs on this machine (the
 * local stack); elsewhere their share is null.
 */
import { readFile } from 'node:fs/promises';
import type pg from 'pg';

/** CPU ms (user + system) this process has used so far. */
export function processCpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/** CPU ms each backend of `applicationName` has run so far, by pid; null if /proc cannot show them. */
export async function backendCpuMs(
  db: pg.Pool,
  applicationName: string,
): Promise<Map<number, number> | null> {
  const { rows } = await db.query<{ pid: number }>(
    'SELECT pid FROM pg_stat_activity WHERE application_name = $1',
    [applicationName],
  );
  const cpu = new Map<number, number>();
  for (const { pid } of rows) {
    // schedstat: time on CPU in ns, then time waiting for one, then time slices.
    const stat = await readFile(`/proc/${pid}/schedstat`, 'utf8').catch(() => null);
    if (stat === null) return null;
    cpu.set(pid, Number(stat.split(' ')[0]) / 1e6);
  }
  return cpu;
}

/** CPU ms the backends used between two readings; a backend that came later counts from zero. */
export function backendCpuSpent(
  before: ReadonlyMap<number, number> | null,
  after: ReadonlyMap<number, number> | null,
): number | null {
  if (before === null || after === null) return null;
  let spent = 0;
  for (const [pid, ms] of after) spent += ms - (before.get(pid) ?? 0);
  return spent;
}

/** Linux's clock ticks per second for /proc/<pid>/stat (USER_HZ, 100 on every mainstream build). */
const TICKS_PER_SECOND = 100;

/** CPU ms (user + system, every thread) another process on this machine has used so far. */
export async function childCpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces: count fields from after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name and state.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
}
