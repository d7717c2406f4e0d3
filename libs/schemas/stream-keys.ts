/**
 * The Kafka key of each stream's records (architecture table): it decides the partition, so it
 * is what keeps one event's, one person's or one address's records in order, and what
 * compaction keeps the latest record of.
 */
import { checkpointKey } from '../kafka/checkpointer.ts';
import type { StreamName } from './catalog.ts';
import type { StreamInputs } from './types.generated.ts';

type KeySource<S extends StreamName> = Omit<StreamInputs[S], 'meta'>;

export const STREAM_KEYS: { [S in StreamName]: (record: KeySource<S>) => string } = {
  'notify.event': (r) => r.event_id,
  'notify.user': (r) => r.user_id,
  'notify.preference-change': (r) => r.user_id,
  'notify.push-subscription': (r) => r.token_hash,
  'notify.web': (r) => r.notification.recipient_id,
  'notify.email': (r) => r.notification.recipient_id,
  'notify.push': (r) => r.notification.recipient_id,
  'notify.email-send': (r) => r.recipient_id,
  'notify.bounce': (r) => r.address_hash,
  'notify.suppression': (r) => r.address_hash,
  'notify.checkpoint': (r) => checkpointKey(r.group, r.topic, r.partition),
  'notify.inbox-state': (r) => r.user_id,
  'notify.status': (r) => r.recipient_id,
  'notify.erasure': (r) => `${r.stream}|${r.key}`,
};

export function recordKey<S extends StreamName>(stream: S, record: KeySource<S>): string {
  const keyOf: (record: KeySource<S>) => string = STREAM_KEYS[stream];
  return keyOf(record);
}
