/**
 * Carries out suppression-policy.ts transitions durably: under the address's row lock, the
 * transition's records (notify.suppression, its tombstone, notify.preference-change) are
 * acknowledged by Kafka first and the new state is committed after. A crash in between repeats the
 * records on redelivery, which the compacted stream and the idempotent preference flip absorb;
 * committing first could lose a suppression for good.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { StreamName } from '../../libs/schemas/catalog.ts';
import type { Meta, NotifyBounce } from '../../libs/schemas/types.generated.ts';
import { type AddressRecord, dueReleases, withAddress } from './address-store.ts';
import type { Outgoing, RecordSender } from './record-sender.ts';
import {
  applyBounce,
  lift,
  release,
  type SuppressionAction,
  type SuppressionPolicy,
} from './suppression-policy.ts';

export interface LedgerDeps {
  readonly db: pg.Pool;
  readonly sender: RecordSender;
  readonly dc: string;
  readonly policy: SuppressionPolicy;
  readonly log: Logger;
  /** People whose address this is, for a complaint that does not name its recipient. */
  readonly peopleAt: (addressHash: string) => Promise<readonly string[]>;
  /** Called once per action carried out, after it is durable. */
  readonly observe?: (action: SuppressionAction['type']) => void;
}

const MAX_DETAIL = 500;

interface Cause {
  readonly dt: number;
  readonly requestId: string | null;
  readonly detail: string | null;
}

/** Applies one notify.bounce record; null for a redelivered one (same meta.id), which changes nothing. */
export async function recordBounce(
  deps: LedgerDeps,
  bounce: NotifyBounce,
): Promise<SuppressionAction[] | null> {
  return withAddress(deps.db, bounce.address_hash, async (tx) => {
    if (!(await tx.markApplied(bounce.meta.id))) return null;
    const transition = applyBounce(tx.current.state, bounce.kind, bounce.meta.dt, deps.policy);
    const next: AddressRecord = {
      addressHash: bounce.address_hash,
      address: bounce.address ?? tx.current.address,
      // Only this record's own person (set by the email sender, never by a report): an id kept from
      // an earlier record would be repeated by every later complaint, whoever has the address now.
      recipientId: bounce.recipient_id,
      detail: transition.actions.some((a) => a.type === 'suppress') ? detailOf(bounce) : tx.current.detail,
      state: transition.state,
    };
    const cause = { dt: bounce.meta.dt, requestId: bounce.meta.request_id, detail: next.detail };
    await carryOut(deps, next, transition.actions, cause);
    await tx.save(next);
    return [...transition.actions];
  });
}

/** Lifts every soft suppression whose cool-down is over at `now`; returns how many. */
export async function releaseDue(deps: LedgerDeps, now: number, batch = 100): Promise<number> {
  let released = 0;
  for (;;) {
    const due = await dueReleases(deps.db, now, batch);
    let round = 0;
    for (const hash of due) {
      round += await withAddress(deps.db, hash, async (tx) => {
        const transition = release(tx.current.state, now);
        if (transition.actions.length === 0) return 0;
        const next = { ...tx.current, detail: null, state: transition.state };
        await carryOut(deps, next, transition.actions, { dt: now, requestId: null, detail: null });
        await tx.save(next);
        return 1;
      });
    }
    released += round;
    if (due.length < batch || round === 0) return released;
  }
}

/** An operator lifts the address's suppression and its soft-bounce count; false if there was none. */
export async function liftAddress(deps: LedgerDeps, addressHash: string, now: number): Promise<boolean> {
  return withAddress(deps.db, addressHash, async (tx) => {
    if (!tx.current.state.suppression) return false;
    const transition = lift(tx.current.state);
    const next = { ...tx.current, detail: null, state: transition.state };
    await carryOut(deps, next, transition.actions, { dt: now, requestId: null, detail: null });
    await tx.save(next);
    return true;
  });
}

async function carryOut(
  deps: LedgerDeps,
  address: AddressRecord,
  actions: readonly SuppressionAction[],
  cause: Cause,
): Promise<void> {
  const meta = (stream: StreamName): Meta => ({
    id: randomUUID(),
    dt: cause.dt,
    stream,
    dc: deps.dc,
    producer: 'bounce',
    request_id: cause.requestId,
  });
  const records: Outgoing[] = [];
  for (const action of actions) {
    if (action.type === 'suppress') {
      records.push({
        stream: 'notify.suppression',
        key: address.addressHash,
        value: {
          meta: meta('notify.suppression'),
          address_hash: address.addressHash,
          address: address.address,
          reason: action.suppression.reason,
          until: action.suppression.until,
          detail: cause.detail,
        },
      });
    } else if (action.type === 'lift') {
      records.push({ stream: 'notify.suppression', key: address.addressHash, value: null });
    } else {
      const people = address.recipientId ? [address.recipientId] : await deps.peopleAt(address.addressHash);
      if (people.length === 0) {
        deps.log.warn(
          { address_hash: address.addressHash },
          'complaint about an address of no known person: suppressed, but no preference to turn off',
        );
      }
      for (const userId of people) {
        records.push({
          stream: 'notify.preference-change',
          key: userId,
          value: {
            meta: meta('notify.preference-change'),
            user_id: userId,
            category: null,
            channel: 'email',
            enabled: false,
            email_frequency: null,
            reason: 'complaint',
          },
        });
      }
    }
  }
  await deps.sender.send(records);
  for (const action of actions) deps.observe?.(action.type);
}

function detailOf(bounce: NotifyBounce): string {
  const code = [bounce.status, bounce.smtp_code].filter((c) => c !== null).join(' ');
  const text = `${bounce.kind} (${bounce.source})${code ? ` ${code}` : ''}${bounce.diagnostic ? `: ${bounce.diagnostic}` : ''}`;
  return text.length > MAX_DETAIL ? `${text.slice(0, MAX_DETAIL - 1)}…` : text;
}
