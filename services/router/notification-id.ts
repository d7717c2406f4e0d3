/**
 * Deterministic ids of what the router emits. The same event routed again (redelivery, replay,
 * failover to the other datacenter) yields the same ids, which is what lets every sink deduplicate.
 */
import { derivedUuid, digestHex } from '../../libs/ids/derived-uuid.ts';
import type { Channel } from '../../libs/schemas/types.generated.ts';

/** 32 lower-case hex characters (128 bits of SHA-256) of (event id, recipient id, channel). */
export function notificationId(eventId: string, recipientId: string, channel: Channel): string {
  return digestHex([eventId, recipientId, channel]).slice(0, 32);
}

/**
 * meta.id of the record carrying a notification: derived from the notification id, so a re-emitted
 * record is byte-for-byte the record emitted before.
 */
export function recordId(notificationIdHex: string): string {
  return derivedUuid(['record', notificationIdHex]);
}
