/**
 * A point in time as operators give it to replay, drop and tail: an ISO-8601 time with its zone
 * ("2026-11-21T10:00:00Z", "...+01:00") or a duration back from now ("2h"). A time without a zone
 * is refused: read in the machine's zone it would move offsets by hours on a server set to UTC.
 */
import { parseDuration } from './duration.ts';

const ISO_WITH_ZONE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/i;
const ISO_WITHOUT_ZONE = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$/i;

/** Milliseconds since the epoch; throws an Error whose message tells the operator what to write. */
export function parsePointInTime(text: string, now: number): number {
  const trimmed = text.trim();
  const ago = parseDuration(trimmed);
  if (ago !== undefined) return now - ago;
  if (ISO_WITHOUT_ZONE.test(trimmed)) {
    throw new Error(
      `"${text}" has no time zone: add Z for UTC or an offset like +01:00 (e.g. ${trimmed.includes('T') ? trimmed : `${trimmed}T00:00:00`}Z)`,
    );
  }
  if (!ISO_WITH_ZONE.test(trimmed)) {
    throw new Error(
      `"${text}" is neither an ISO-8601 time with a zone (2026-11-21T10:00:00Z) nor a duration (2h)`,
    );
  }
  const ms = Date.parse(trimmed);
  if (Number.isNaN(ms)) throw new Error(`"${text}" is not a valid time`);
  return ms;
}
