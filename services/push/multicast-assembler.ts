/**
 * Turns the devices of closing windows into multicasts of at most 500 tokens, one message kind per
 * provider and app (each app has its own APNs topic and its own handling of the nudge), pooling
 * windows of every partition. A window alone rarely fills its last multicast per kind: at saturation
 * every partition's window closes with a partial one, so calls carried far fewer than 500 tokens.
 *
 * A window joins as it opens, saying when its timer closes it and when its bound (opening time plus
 * the longest window) is up. When it hands its devices in, full multicasts leave at once; a partial
 * one waits only while another window that closes before the earliest bound among the devices it
 * holds has not handed its own in yet, and never past that bound. So no push leaves later than its
 * window's bound allows, a lone window sends at its own random time, and windows closing within each
 * other's bounds share their last multicasts.
 */
import { randomUUID } from 'node:crypto';
import type { BatchResponse, MulticastMessage, SendResponse } from 'firebase-admin/messaging';
import type { PushProvider } from '../../libs/schemas/types.generated.ts';
import { nudge } from './nudge.ts';

export const FCM_MULTICAST_LIMIT = 500;

export interface Target {
  recipient: string;
  provider: PushProvider;
  app: string;
  token: string;
  tokenHash: string;
}

/**
 * The provider's answer for one device, or why the call carrying it failed as a whole; `call` names
 * the multicast call that carried it, so the delivery trail can say which call a push went out in.
 */
export type TargetAnswer =
  | { kind: 'answered'; call: string; response: SendResponse }
  | { kind: 'call-failed'; call: string; error: unknown };

export interface WindowTimes {
  /** When the window's timer closes it. */
  closesAt: number;
  /** The latest its pushes may leave: its opening time plus the longest window. */
  sendBy: number;
}

export interface Contribution {
  /** Hands the window's devices in, once; settles with each device's answer, in order. */
  send(targets: readonly Target[]): Promise<TargetAnswer[]>;
  /** The window hands nothing (more) in, e.g. its lookups failed: nobody waits for it. */
  leave(): void;
}

export interface MulticastAssembler {
  join(window: WindowTimes): Contribution;
}

export interface MulticastAssemblerOptions {
  send(message: MulticastMessage): Promise<BatchResponse>;
  maxTokens?: number;
  now?: () => number;
  observe?(provider: PushProvider, tokens: number): void;
}

interface Waiting {
  target: Target;
  sendBy: number;
  answer(answer: TargetAnswer): void;
}

export function createMulticastAssembler(options: MulticastAssemblerOptions): MulticastAssembler {
  const { maxTokens = FCM_MULTICAST_LIMIT, now = Date.now } = options;
  /** Windows that have joined and not handed their devices in yet. */
  const expected = new Set<WindowTimes>();
  const kinds = new Map<string, Waiting[]>();
  let timer: NodeJS.Timeout | undefined;

  function dispatch(batch: Waiting[]) {
    const { provider } = batch[0]!.target;
    const call = randomUUID();
    options.observe?.(provider, batch.length);
    options
      .send(
        nudge(
          provider,
          batch.map((w) => w.target.token),
        ),
      )
      .then(
        (response) => {
          batch.forEach((w, i) => {
            const answer = response.responses[i];
            w.answer(
              answer
                ? { kind: 'answered', call, response: answer }
                : {
                    kind: 'call-failed',
                    call,
                    error: new Error('the provider answered fewer tokens than sent'),
                  },
            );
          });
        },
        (error: unknown) => {
          for (const w of batch) w.answer({ kind: 'call-failed', call, error });
        },
      );
  }

  /** Sends what is full or due; partial multicasts wait for the next window to hand in, or their bound. */
  function settle() {
    clearTimeout(timer);
    timer = undefined;
    const at = now();
    let wakeAt = Number.POSITIVE_INFINITY;
    for (const [kind, queue] of kinds) {
      while (queue.length >= maxTokens) dispatch(queue.splice(0, maxTokens));
      if (queue.length > 0) {
        const bound = Math.min(...queue.map((w) => w.sendBy));
        if (bound > at && [...expected].some((w) => w.closesAt <= bound)) {
          wakeAt = Math.min(wakeAt, bound);
          continue;
        }
        dispatch(queue);
      }
      kinds.delete(kind);
    }
    if (wakeAt !== Number.POSITIVE_INFINITY) timer = setTimeout(settle, wakeAt - at);
  }

  return {
    join(window) {
      const times = { ...window };
      expected.add(times);
      let handedIn = false;
      return {
        send(targets) {
          if (handedIn) throw new Error('a window hands its devices in once');
          handedIn = true;
          expected.delete(times);
          const answers = targets.map((target) => {
            const { promise, resolve } = Promise.withResolvers<TargetAnswer>();
            const kind = `${target.provider}\u0000${target.app}`;
            const queue = kinds.get(kind) ?? [];
            queue.push({ target, sendBy: times.sendBy, answer: resolve });
            kinds.set(kind, queue);
            return promise;
          });
          settle();
          return Promise.all(answers);
        },
        leave() {
          if (handedIn) return;
          handedIn = true;
          expected.delete(times);
          settle();
        },
      };
    },
  };
}
