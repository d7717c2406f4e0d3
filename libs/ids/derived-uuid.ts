/**
 * Ids derived from what a record describes rather than drawn at random: the same thing produced
 * again (a redelivery, a replay, a failover to the other datacenter) gets the same id, which is
 * what lets readers and sinks deduplicate without state of their own.
 */
import { hash } from 'node:crypto';

/** SHA-256 of the parts, hex. JSON keeps parts apart: ("a|b", "c") and ("a", "b|c") differ. */
export function digestHex(parts: readonly unknown[]): string {
  // The one-shot hash: no Hash object per id, on paths that make several ids per record.
  return hash('sha256', JSON.stringify(parts), 'hex');
}

/** A UUID (version 8, RFC 9562) from the SHA-256 of the parts. */
export function derivedUuid(parts: readonly unknown[]): string {
  const h = digestHex(parts);
  // Version nibble 8; variant bits 10 in the top of the 17th nibble.
  const variant = ((Number.parseInt(h.charAt(16), 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
