/** The records push tests publish: a device of a person, and a notification for a person. */
import { createHash, randomUUID } from 'node:crypto';
import type { PublishItem } from '../../libs/publish/publish.ts';

export const tokenHash = (token: string) => createHash('sha256').update(token).digest('hex');

export function subscription(userId: string, token: string): PublishItem {
  return {
    stream: 'notify.push-subscription',
    record: {
      token_hash: tokenHash(token),
      user_id: userId,
      provider: 'fcm',
      token,
      app: 'org.wikipedia',
      locale: 'en',
    },
  };
}

export function notification(recipient: string, id: string = randomUUID()): PublishItem {
  return {
    stream: 'notify.push',
    record: {
      notification: {
        notification_id: id,
        event_id: `e-${id}`,
        event_type: 'edit-user-talk',
        category: 'edit-user-talk',
        recipient_id: recipient,
        title: 'Someone left a message on your talk page',
        url: 'https://example.org/wiki/User_talk:X',
        priority: 1,
        locale: 'en',
        timezone: 'UTC',
      },
    },
  };
}
