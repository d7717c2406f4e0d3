/**
 * Fixed windows of event time (meta.dt), aligned to the epoch. Counting by event time rather than
 * arrival time means a backlog drained after an outage, or a replay, is counted in the windows its
 * events happened in, exactly as on the first run.
 */
export function windowStart(windowMs: number, eventTime: number): number {
  return Math.floor(eventTime / windowMs) * windowMs;
}
