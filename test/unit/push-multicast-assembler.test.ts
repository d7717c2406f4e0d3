import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import type { BatchResponse, MulticastMessage } from 'firebase-admin/messaging';
import {
  createMulticastAssembler,
  type Target,
  type TargetAnswer,
} from '../../services/push/multicast-assembler.ts';

const target = (token: string, provider: 'fcm' | 'apns' = 'fcm', app = 'org.wikipedia'): Target => ({
  recipient: `u-${token}`,
  provider,
  app,
  token,
  tokenHash: `h-${token}`,
});

const targets = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => target(`${prefix}${i}`));

/** A provider that accepts every token but the ones named, and records each call's tokens. */
function fakeProvider(failing: readonly string[] = []) {
  const calls: string[][] = [];
  return {
    calls,
    async send(message: MulticastMessage): Promise<BatchResponse> {
      calls.push(message.tokens);
      const responses = message.tokens.map((t) =>
        failing.includes(t)
          ? { success: false, error: { code: 'messaging/internal-error' } }
          : { success: true },
      );
      return { responses, successCount: 0, failureCount: 0 } as unknown as BatchResponse;
    },
  };
}

const flushed = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('multicast assembler', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 }));
  afterEach(() => mock.timers.reset());

  test('a lone window: 1,200 tokens of one kind become calls of 500, 500 and 200 at once; kinds never share a call', async () => {
    const provider = fakeProvider();
    const assembler = createMulticastAssembler({ send: (m) => provider.send(m) });
    const window = targets('t', 1_200);
    window.push(target('ios', 'apns'), target('other', 'fcm', 'org.other'));
    const answers = await assembler.join({ closesAt: 0, sendBy: 1_000 }).send(window);
    assert.deepEqual(
      provider.calls.map((c) => c.length),
      [500, 500, 200, 1, 1],
    );
    assert.deepEqual(provider.calls[3], ['ios']);
    assert.deepEqual(provider.calls[4], ['other']);
    assert.equal(new Set(provider.calls.flat()).size, 1_202, 'every token once');
    assert.equal(answers.length, 1_202);
  });

  test('windows closing within each other’s bounds share their last multicast; each gets its own answers', async () => {
    const provider = fakeProvider(['b7']);
    const assembler = createMulticastAssembler({ send: (m) => provider.send(m) });
    const a = assembler.join({ closesAt: 1_000, sendBy: 2_000 });
    const b = assembler.join({ closesAt: 1_500, sendBy: 2_500 });

    mock.timers.tick(1_000);
    const answersA = a.send(targets('a', 300));
    await flushed();
    assert.equal(
      provider.calls.length,
      0,
      'a partial multicast waits for the window closing before its bound',
    );

    mock.timers.tick(500);
    const answersB = b.send(targets('b', 300));
    const [fromA, fromB] = await Promise.all([answersA, answersB]);
    assert.deepEqual(
      provider.calls.map((c) => c.length),
      [500, 100],
      'two windows of 300 make one full call and one of the rest, not two of 300',
    );
    const ok = (answer: TargetAnswer | undefined) => answer?.kind === 'answered' && answer.response.success;
    assert.ok(fromA.every(ok));
    assert.equal(fromB.length, 300);
    assert.equal(ok(fromB[7]), false, "b7's failure is b's to handle");
    assert.equal(fromB.filter((x) => !ok(x)).length, 1);
  });

  test('a partial multicast never waits past its bound, nor for a window closing after it', async () => {
    const provider = fakeProvider();
    const assembler = createMulticastAssembler({ send: (m) => provider.send(m) });
    const late = assembler.join({ closesAt: 2_500, sendBy: 3_000 });
    const a = assembler.join({ closesAt: 1_000, sendBy: 2_000 });
    const slow = assembler.join({ closesAt: 1_900, sendBy: 2_400 });

    mock.timers.tick(1_000);
    const answersA = a.send(targets('a', 10));
    mock.timers.tick(999);
    await flushed();
    assert.equal(provider.calls.length, 0, 'waiting for the slow window, which closes before the bound');
    mock.timers.tick(1);
    await answersA;
    assert.deepEqual(
      provider.calls.map((c) => c.length),
      [10],
      'sent alone at its bound: the slow window had not handed its devices in',
    );

    await slow.send(targets('s', 5));
    assert.deepEqual(
      provider.calls.map((c) => c.length),
      [10, 5],
      'the late window closes after the bounds of both: nobody waits for it',
    );
    late.leave();
  });

  test('a window that leaves without sending (its lookups failed) holds nobody up', async () => {
    const provider = fakeProvider();
    const assembler = createMulticastAssembler({ send: (m) => provider.send(m) });
    const a = assembler.join({ closesAt: 1_000, sendBy: 5_000 });
    const failed = assembler.join({ closesAt: 1_200, sendBy: 5_000 });
    mock.timers.tick(1_000);
    const answers = a.send(targets('a', 3));
    mock.timers.tick(200);
    failed.leave();
    await answers;
    assert.deepEqual(provider.calls, [['a0', 'a1', 'a2']]);
    assert.equal(Date.now(), 1_200, 'sent when the other window gave up, not at the bound');
  });

  test('a call that fails as a whole fails every device in it', async () => {
    const assembler = createMulticastAssembler({
      send: async () => {
        throw Object.assign(new Error('socket hang up'), { code: 'app/network-error' });
      },
    });
    const answers = await assembler.join({ closesAt: 0, sendBy: 0 }).send(targets('x', 3));
    assert.deepEqual(
      answers.map((a) => a.kind),
      ['call-failed', 'call-failed', 'call-failed'],
    );
  });
});
