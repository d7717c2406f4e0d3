/**
 * Deterministic ids of what the router emits. The same event routed again (redelivery, replay,
 * failover to the other datacenter) yields the same ids, which is what lets every sink deduplicate.
 */
import { hash } from 'node:crypto';
import type { Channel } from '../../libs/schemas/types.generated.ts';

function sha256Hex(parts: readonly string[]): string {
  // JSON keeps the parts apart: ("a|b", "c") and ("a", "b|c") must not hash alike.
  // The one-shot hash: no Hash object per id, and the router makes two ids per record it emits.
  return hash('sha256', JSON.stringify(parts), 'hex');
}

/** 32 lower-case hex characters (128 bits of SHA-256) of (event id, recipient id, channel). */
export function notificationId(eventId: string, recipientId: string, channel: Channel): string {
  return sha256Hex([eventId, recipientId, channel]).slice(0, 32);
}

/**
 * meta.id of the record carrying a notification: a UUID (version 8, RFC 9562) derived from the
 * notification id, so a re-emitted record is byte-for-byte the record emitted before.
 */
export function recordId(notificationIdHex: string): string {
  const h = sha256Hex(['record', notificationIdHex]);
  // Version nibble 8; variant bits 10 in the top of the 17th nibble.
  const variant = ((Number.parseInt(h.charAt(16), 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
