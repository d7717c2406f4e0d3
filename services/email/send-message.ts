/**
 * One notify.email-send record's way to SMTP, in the order that keeps every promise cheap: a
 * message already sent or suppressed costs no budget and no SMTP session; a budget slot is taken
 * only for a send that will really be tried, and given back when the attempt definitely failed.
 * The ledger row is claimed before the SMTP transaction and marked sent after it (the window this
 * leaves is described in sent-ledger.ts). A row an earlier attempt left at 'sending' means the
 * server may or may not have the mail: at-least-once mail (the default, and always transactional
 * mail) is sent again under the same Message-ID; at-most-once mail is counted ambiguous and left.
 */
import type { NotifyEmailSend } from '../../libs/schemas/types.generated.ts';
import { type OutgoingMail, outgoingMail, UnsendableMailError } from './outgoing-mail.ts';
import type { Claim, LedgerState } from './sent-ledger.ts';
import { classifySmtpError, mayHaveBeenAccepted, type SmtpFailure, serverUnreachable } from './smtp-error.ts';

export type BudgetGrant =
  | { readonly ok: true; readonly giveBack: () => void }
  | { readonly ok: false; readonly retryAt: number };

export interface SendDeps {
  /**
   * Runs a claim-to-verdict stretch in a slot of the SMTP pool (a few per connection). A message is
   * claimed only once a slot is free for it, so a crash leaves a bounded number of unconfirmed
   * claims instead of every message queued for the pool.
   */
  smtpSlot<T>(task: () => Promise<T>): Promise<T>;
  claim(sendId: string, recipientId: string): Promise<Claim>;
  /** Takes over a claim an earlier attempt left at 'sending' (see retakeSend). */
  retake(sendId: string, recipientId: string): Promise<Claim>;
  /** Records the server's acceptance; may write later (see createSentMarker). */
  markSent(sendId: string, smtpResponse: string): void;
  release(sendId: string): Promise<void>;
  /** A slot of the send budget, or when the next one is available. */
  takeBudget(): Promise<BudgetGrant>;
  returnPath(sendId: string, recipient: string): string;
  send(mail: OutgoingMail): Promise<string>;
}

/** What the batch already knows about a record: one query each per fetched batch. */
export interface KnownAbout {
  readonly ledger: LedgerState | undefined;
  readonly suppressed: boolean;
}

export type SendOutcome =
  | {
      readonly kind: 'sent';
      readonly response: string;
      /** An earlier attempt's outcome was unknown: this is possibly the second copy. */
      readonly resent: boolean;
    }
  | { readonly kind: 'duplicate' }
  | {
      readonly kind: 'ambiguous';
      readonly detail: string;
      /** At-least-once mail whose session broke here: the claim stays, a retry sends it again. */
      readonly retry: boolean;
    }
  | { readonly kind: 'suppressed' }
  | { readonly kind: 'no-budget'; readonly retryAt: number }
  | { readonly kind: 'unsendable'; readonly detail: string }
  | {
      readonly kind: 'failed';
      readonly failure: SmtpFailure;
      /** Nobody answered: hold all sending, not just this message. */
      readonly unreachable: boolean;
    };

/** Transactional mail is never left unsent, whatever the record says. */
export const atLeastOnce = (record: NotifyEmailSend): boolean =>
  record.kind === 'transactional' || record.delivery !== 'at_most_once';

const fromLedger = (state: LedgerState): SendOutcome =>
  state === 'sent'
    ? { kind: 'duplicate' }
    : {
        kind: 'ambiguous',
        detail: 'an earlier attempt never confirmed whether the server took it',
        retry: false,
      };

export async function sendMessage(
  record: NotifyEmailSend,
  known: KnownAbout,
  deps: SendDeps,
): Promise<SendOutcome> {
  if (known.ledger === 'sent' || (known.ledger === 'sending' && !atLeastOnce(record)))
    return fromLedger(known.ledger);
  if (known.suppressed) return { kind: 'suppressed' };
  let mail: OutgoingMail;
  try {
    mail = outgoingMail(record, deps.returnPath(record.send_id, record.to.trim()));
  } catch (error) {
    if (error instanceof UnsendableMailError || error instanceof RangeError)
      return { kind: 'unsendable', detail: error.message };
    throw error;
  }

  const resend = known.ledger === 'sending';
  return deps.smtpSlot(() => claimAndSend(record, mail, deps, resend));
}

async function claimAndSend(
  record: NotifyEmailSend,
  mail: OutgoingMail,
  deps: SendDeps,
  resend: boolean,
): Promise<SendOutcome> {
  const claim = await (resend ? deps.retake : deps.claim)(record.send_id, record.recipient_id);
  // A row that turned up after the batch was read belongs to an attempt running right now.
  if (claim !== 'claimed') return fromLedger(claim);
  const budget = await deps.takeBudget();
  if (!budget.ok) {
    await deps.release(record.send_id);
    return { kind: 'no-budget', retryAt: budget.retryAt };
  }

  let response: string;
  try {
    response = await deps.send(mail);
  } catch (error) {
    if (mayHaveBeenAccepted(error)) {
      // The slot stays spent and the row stays 'sending': the mail may be in the person's inbox.
      return { kind: 'ambiguous', detail: (error as Error).message, retry: atLeastOnce(record) };
    }
    await deps.release(record.send_id);
    budget.giveBack();
    return { kind: 'failed', failure: classifySmtpError(error), unreachable: serverUnreachable(error) };
  }
  deps.markSent(record.send_id, response);
  return { kind: 'sent', response, resent: resend };
}
