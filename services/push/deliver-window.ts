/**
 * What happens when a window closes: one push per person however many of their notifications
 * arrived, to each of their devices that has not had it yet, through the multicast assembler; then
 * the consequences of the providers' answers per person.
 */
import type { Target, TargetAnswer } from './multicast-assembler.ts';
import { classifyFailure } from './provider-failure.ts';
import type { Device } from './subscriptions.ts';

export interface PushRequest {
  recipient: string;
  notificationId: string;
}

/** How a person's push went; every record of theirs in the window shares it. */
export type RecipientOutcome =
  | { kind: 'delivered' }
  | { kind: 'transient'; code: string; retryAfterMs: number | null }
  | { kind: 'rejected'; code: string };

/**
 * A person's outcome and, for a retry, the one notification that carries it: retrying each of their
 * records would push them once per record. The others count as delivered, so a redelivery of one
 * of them does not push either.
 */
export type WindowOutcome = RecipientOutcome & { carrier: string; devices: DeviceReport };

/** What became of one person's devices in a window: what the delivery trail tells. */
export interface DeviceReport {
  /** The multicast calls that carried a push the provider accepted. */
  calls: string[];
  /** Devices the provider accepted the push for, now. */
  pushed: number;
  /** Devices that already had it: a redelivery, a replay, or the retry of a partial failure. */
  already: number;
  /** Devices the provider said are gone, with its code; they are tombstoned. */
  dead: { tokenHash: string; code: string }[];
}

const noDevices = (): DeviceReport => ({ calls: [], pushed: 0, already: 0, dead: [] });

export interface WindowDeps {
  devicesOf(userIds: readonly string[]): Promise<Map<string, Device[]>>;
  /** `notification_id|token_hash` pairs already delivered. */
  deliveredPairs(notificationIds: readonly string[]): Promise<Set<string>>;
  recordDelivered(pairs: readonly { notificationId: string; tokenHash: string }[]): Promise<void>;
  /** Tombstones the devices on notify.push-subscription and deletes them locally, durably. */
  dropDeadDevices(tokenHashes: readonly string[]): Promise<void>;
  /** Sends the nudge to every target (pooled with other windows'); answers in the same order. */
  multicast(targets: readonly Target[]): Promise<TargetAnswer[]>;
  observe?: {
    token(outcome: 'delivered' | 'dead' | 'transient' | 'rejected' | 'skipped'): void;
  };
}

export interface WindowResult {
  outcomes: Map<string, WindowOutcome>;
  /** Fewer than the requests when a person had several notifications in the window. */
  pushes: number;
}

/** A failure that must be retried outranks one that must not, which outranks success. */
function worse(a: RecipientOutcome | undefined, b: RecipientOutcome): RecipientOutcome {
  if (!a) return b;
  if (a.kind === 'transient' && b.kind === 'transient') {
    return { ...a, retryAfterMs: Math.max(a.retryAfterMs ?? 0, b.retryAfterMs ?? 0) || null };
  }
  const rank = { delivered: 0, rejected: 1, transient: 2 };
  return rank[b.kind] > rank[a.kind] ? b : a;
}

export async function deliverWindow(
  requests: readonly PushRequest[],
  deps: WindowDeps,
): Promise<WindowResult> {
  const byRecipient = new Map<string, Set<string>>();
  for (const { recipient, notificationId } of requests) {
    const ids = byRecipient.get(recipient) ?? new Set<string>();
    ids.add(notificationId);
    byRecipient.set(recipient, ids);
  }
  const recipients = [...byRecipient.keys()];
  const [devices, delivered] = await Promise.all([
    deps.devicesOf(recipients),
    deps.deliveredPairs(requests.map((r) => r.notificationId)),
  ]);

  const outcomes = new Map<string, RecipientOutcome>();
  const reports = new Map<string, DeviceReport>();
  const reportOf = (recipient: string) => reports.get(recipient) ?? noDevices();
  const targets: Target[] = [];
  for (const [recipient, ids] of byRecipient) {
    outcomes.set(recipient, { kind: 'delivered' });
    reports.set(recipient, noDevices());
    for (const device of devices.get(recipient) ?? []) {
      // Redelivered or retried: the device already had the push for every one of these.
      if ([...ids].every((id) => delivered.has(`${id}|${device.tokenHash}`))) {
        deps.observe?.token('skipped');
        reportOf(recipient).already++;
        continue;
      }
      targets.push({ recipient, ...device });
    }
  }

  const nowDelivered: { notificationId: string; tokenHash: string }[] = [];
  const dead: string[] = [];
  const answers = await deps.multicast(targets);
  answers.forEach((answer, i) => {
    const target = targets[i]!;
    if (answer.kind === 'call-failed') {
      // A call failing as a whole says nothing about any one token: retry everyone in it.
      const failure = classifyFailure(answer.error);
      const outcome: RecipientOutcome =
        failure.kind === 'transient'
          ? failure
          : { kind: 'transient', code: failure.code, retryAfterMs: null };
      outcomes.set(target.recipient, worse(outcomes.get(target.recipient), outcome));
      return;
    }
    if (answer.response.success) {
      deps.observe?.token('delivered');
      const report = reportOf(target.recipient);
      report.pushed++;
      if (!report.calls.includes(answer.call)) report.calls.push(answer.call);
      for (const id of byRecipient.get(target.recipient) ?? []) {
        nowDelivered.push({ notificationId: id, tokenHash: target.tokenHash });
      }
      return;
    }
    const failure = classifyFailure(answer.response.error);
    if (failure.kind === 'dead-token') {
      deps.observe?.token('dead');
      dead.push(target.tokenHash);
      reportOf(target.recipient).dead.push({ tokenHash: target.tokenHash, code: failure.code });
      return;
    }
    deps.observe?.token(failure.kind);
    outcomes.set(target.recipient, worse(outcomes.get(target.recipient), failure));
  });
  const targetsOf = Map.groupBy(targets, (t) => t.recipient);
  const result = new Map<string, WindowOutcome>();
  for (const [recipient, outcome] of outcomes) {
    const [carrier = '', ...covered] = byRecipient.get(recipient) ?? [];
    result.set(recipient, { ...outcome, carrier, devices: reportOf(recipient) });
    if (outcome.kind !== 'transient') continue;
    for (const target of targetsOf.get(recipient) ?? []) {
      for (const id of covered) nowDelivered.push({ notificationId: id, tokenHash: target.tokenHash });
    }
  }
  await Promise.all([deps.recordDelivered(nowDelivered), deps.dropDeadDevices(dead)]);
  return { outcomes: result, pushes: byRecipient.size };
}
