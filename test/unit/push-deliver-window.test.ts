import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { BatchResponse, MulticastMessage } from 'firebase-admin/messaging';
import { deliverWindow, type WindowDeps } from '../../services/push/deliver-window.ts';
import { createMulticastAssembler } from '../../services/push/multicast-assembler.ts';
import { classifyFailure } from '../../services/push/provider-failure.ts';
import type { Device } from '../../services/push/subscriptions.ts';

const device = (userId: string, token: string, provider: 'fcm' | 'apns' = 'fcm'): Device => ({
  userId,
  provider,
  token,
  tokenHash: `h-${token}`,
  app: 'org.wikipedia',
});

type Answer = { success: true } | { success: false; error: { code: string; httpResponse?: object } };

function fakeDeps(devices: Device[], answers: Record<string, Answer> = {}) {
  const sent: MulticastMessage[] = [];
  const delivered = new Set<string>();
  const dropped: string[] = [];
  const provider = {
    async send(message: MulticastMessage): Promise<BatchResponse> {
      sent.push(message);
      const responses = message.tokens.map((t) => answers[t] ?? { success: true });
      return {
        responses,
        successCount: responses.filter((r) => r.success).length,
        failureCount: responses.filter((r) => !r.success).length,
      } as unknown as BatchResponse;
    },
  };
  const assembler = createMulticastAssembler({ send: (message) => provider.send(message) });
  const deps: WindowDeps = {
    async devicesOf(users) {
      const map = new Map<string, Device[]>();
      for (const d of devices.filter((d) => users.includes(d.userId))) {
        map.set(d.userId, [...(map.get(d.userId) ?? []), d]);
      }
      return map;
    },
    async deliveredPairs() {
      return new Set(delivered);
    },
    async recordDelivered(pairs) {
      for (const p of pairs) delivered.add(`${p.notificationId}|${p.tokenHash}`);
    },
    async dropDeadDevices(hashes) {
      dropped.push(...hashes);
    },
    // A window of its own, with nobody else's to wait for: its multicasts leave at once.
    multicast: (targets) => assembler.join({ closesAt: 0, sendBy: 0 }).send(targets),
  };
  return { deps, sent, delivered, dropped, provider };
}

describe('deliverWindow', () => {
  test('a person with many notifications in one window gets one push per device', async () => {
    const { deps, sent } = fakeDeps([device('u1', 'phone'), device('u1', 'tablet', 'apns')]);
    const requests = Array.from({ length: 7 }, (_, i) => ({ recipient: 'u1', notificationId: `n${i}` }));
    const result = await deliverWindow(requests, deps);
    assert.equal(result.pushes, 1);
    assert.deepEqual(
      sent.map((m) => m.tokens),
      [['phone'], ['tablet']],
    );
    assert.ok(sent[1]?.apns, 'the APNs token goes through the apns block');
    assert.equal(
      JSON.stringify(sent).includes('n0'),
      false,
      'the message carries nothing about the notification',
    );
    const { devices, ...outcome } = result.outcomes.get('u1')!;
    assert.deepEqual(outcome, { kind: 'delivered', carrier: 'n0' });
    assert.deepEqual(
      [devices.pushed, devices.calls.length, devices.dead],
      [2, 2, []],
      'one call per provider',
    );
  });

  test('a redelivered window wakes no device that already had the push', async () => {
    const { deps, sent } = fakeDeps([device('u1', 'phone')]);
    await deliverWindow([{ recipient: 'u1', notificationId: 'n1' }], deps);
    await deliverWindow([{ recipient: 'u1', notificationId: 'n1' }], deps);
    assert.equal(sent.length, 1);
  });

  test('dead tokens are dropped and the person counts as done; a 429 is retried with its Retry-After', async () => {
    const { deps, dropped } = fakeDeps([device('u1', 'dead'), device('u2', 'busy'), device('u3', 'bad')], {
      dead: { success: false, error: { code: 'messaging/registration-token-not-registered' } },
      busy: {
        success: false,
        error: {
          code: 'messaging/message-rate-exceeded',
          httpResponse: { status: 429, headers: { 'retry-after': '7' } },
        },
      },
      bad: {
        success: false,
        error: { code: 'messaging/third-party-auth-error', httpResponse: { status: 401 } },
      },
    });
    const result = await deliverWindow(
      ['u1', 'u2', 'u3'].map((recipient) => ({ recipient, notificationId: `n-${recipient}` })),
      deps,
    );
    assert.deepEqual(dropped, ['h-dead']);
    const none = { calls: [], pushed: 0, already: 0, dead: [] };
    assert.deepEqual(result.outcomes.get('u1'), {
      kind: 'delivered',
      carrier: 'n-u1',
      devices: {
        ...none,
        dead: [{ tokenHash: 'h-dead', code: 'messaging/registration-token-not-registered' }],
      },
    });
    assert.deepEqual(result.outcomes.get('u2'), {
      kind: 'transient',
      code: 'messaging/message-rate-exceeded',
      retryAfterMs: 7_000,
      carrier: 'n-u2',
      devices: none,
    });
    assert.deepEqual(result.outcomes.get('u3'), {
      kind: 'rejected',
      code: 'messaging/third-party-auth-error',
      carrier: 'n-u3',
      devices: none,
    });
  });

  test('a retry is carried by one notification; no other record of the person pushes again', async () => {
    let busy = true;
    const { deps, sent, provider } = fakeDeps([device('u1', 'phone'), device('u1', 'tablet')]);
    const send = provider.send;
    provider.send = async (message) => {
      const response = await send(message);
      const tablet = message.tokens.indexOf('tablet');
      if (busy && tablet >= 0) {
        busy = false;
        response.responses[tablet] = {
          success: false,
          error: { code: 'messaging/message-rate-exceeded', httpResponse: { status: 429, headers: {} } },
        } as unknown as BatchResponse['responses'][number];
      }
      return response;
    };
    const requests = ['n1', 'n2', 'n3'].map((notificationId) => ({ recipient: 'u1', notificationId }));
    const first = await deliverWindow(requests, deps);
    assert.equal(first.outcomes.get('u1')?.kind, 'transient');
    assert.equal(first.outcomes.get('u1')?.carrier, 'n1');
    await deliverWindow([{ recipient: 'u1', notificationId: 'n2' }], deps);
    await deliverWindow([{ recipient: 'u1', notificationId: 'n1' }], deps);
    assert.deepEqual(
      sent.flatMap((m) => m.tokens),
      ['phone', 'tablet', 'tablet'],
      'the retry went to the tablet alone, once',
    );
  });

  test('a call that fails as a whole is retried for everyone in it', async () => {
    const { deps, provider } = fakeDeps([device('u1', 'a'), device('u2', 'b')]);
    provider.send = async () => {
      throw Object.assign(new Error('socket hang up'), { code: 'app/network-error' });
    };
    const result = await deliverWindow(
      [
        { recipient: 'u1', notificationId: 'n1' },
        { recipient: 'u2', notificationId: 'n2' },
      ],
      deps,
    );
    assert.equal(result.outcomes.get('u1')?.kind, 'transient');
    assert.equal(result.outcomes.get('u2')?.kind, 'transient');
  });
});

describe('classifyFailure', () => {
  test('Retry-After as seconds or as an HTTP date', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    const at = (retryAfter: string) =>
      classifyFailure(
        {
          code: 'messaging/message-rate-exceeded',
          httpResponse: { status: 429, headers: { 'retry-after': retryAfter } },
        },
        now,
      );
    assert.deepEqual(at('3'), {
      kind: 'transient',
      code: 'messaging/message-rate-exceeded',
      retryAfterMs: 3_000,
    });
    assert.equal((at('Thu, 01 Jan 2026 00:00:30 GMT') as { retryAfterMs: number }).retryAfterMs, 30_000);
  });

  test('an invalid token is dead; a 503 is transient without a hint', () => {
    assert.equal(
      classifyFailure({ code: 'messaging/invalid-argument', httpResponse: { status: 400 } }).kind,
      'dead-token',
    );
    assert.deepEqual(
      classifyFailure({ code: 'messaging/server-unavailable', httpResponse: { status: 503, headers: {} } }),
      {
        kind: 'transient',
        code: 'messaging/server-unavailable',
        retryAfterMs: null,
      },
    );
  });
});
