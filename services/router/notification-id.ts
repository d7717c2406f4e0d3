/**
 * Deterministic ids of what the router emits. The same event routed again (redelivery, replay,
 * failover to the other datacenter) yields the same ids, which is what lets every sink deduplicate.
 */
import { createHash } from 'node:crypto';
import type { Channel } from '../../libs/schemas/types.generated.ts';

function sha256Hex(parts: readonly string[]): string {
  // JSON keeps the parts apart: ("a|b", "c") and ("a", "b|c") must not hash alike.
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
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
  const hex = sha256Hex(['record', notificationIdHex]).slice(0, 32).split('');
  hex[12] = '8';
  hex[16] = ((Number.parseInt(hex[16] ?? '0', 16) & 0x3) | 0x8).toString(16);
  const h = hex.join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}
