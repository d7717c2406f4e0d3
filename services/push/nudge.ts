/**
 * The one message push ever sends: a content-free "check your notifications" nudge. The app fetches
 * the notifications themselves over the API, so neither FCM nor APNs nor the network sees what
 * happened, and every recipient of a window can share one multicast.
 */
import type { MulticastMessage } from 'firebase-admin/messaging';
import type { PushProvider } from '../../libs/schemas/types.generated.ts';

export const NUDGE_TYPE = 'checkNotifications';

export function nudge(provider: PushProvider, tokens: string[]): MulticastMessage {
  const data = { type: NUDGE_TYPE };
  if (provider === 'fcm') return { tokens, data, android: { priority: 'high' } };
  // APNs shows nothing from a data-only message: a localized alert key the app resolves itself.
  return {
    tokens,
    data,
    apns: {
      headers: { 'apns-push-type': 'alert', 'apns-priority': '10' },
      payload: { aps: { alert: { titleLocKey: 'check_notifications' }, mutableContent: true } },
    },
  };
}
