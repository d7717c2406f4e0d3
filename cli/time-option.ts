/** A time option (--since, --until, --before, --from): a usage error when it cannot be read. */
import { parsePointInTime } from '../libs/config/point-in-time.ts';
import { usageError } from './context.ts';

export function pointInTime(text: string, option: string): number {
  try {
    return parsePointInTime(text, Date.now());
  } catch (error) {
    throw usageError(`${option}: ${(error as Error).message}`);
  }
}
