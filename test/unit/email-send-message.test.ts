import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NotifyEmailSend } from '../../libs/schemas/types.generated.ts';
import type { OutgoingMail } from '../../services/email/outgoing-mail.ts';
import { type SendDeps, sendMessage } from '../../services/email/send-message.ts';
import type { Claim } from '../../services/email/sent-ledger.ts';

const record: NotifyEmailSend = {
  meta: { id: 'm', dt: 0, stream: 'notify.email-send', dc: 'eqiad', producer: 'email', request_id: null },
  send_id: 'abcdef0123456789abcdef0123456789',
  notification_ids: ['n1'],
  event_ids: { n1: 'e1' },
  recipient_id: 'u1',
  to: 'alice@example.org',
  from: 'wiki@mail.example.org',
  subject: 's',
  text: 't',
  html: 'h',
  headers: {},
  category: 'c',
  locale: 'en',
  kind: 'instant',
  delivery: 'at_least_once',
};

/** Fake dependencies recording what was called, in order. */
function fakes(options: { claim?: Claim; budget?: boolean; send?: () => Promise<string> } = {}) {
  const calls: string[] = [];
  const sent: OutgoingMail[] = [];
  const deps: SendDeps = {
    smtpSlot: (task) => task(),
    async claim() {
      calls.push('claim');
      return options.claim ?? 'claimed';
    },
    async retake() {
      calls.push('retake');
      return options.claim ?? 'claimed';
    },
    markSent: () => calls.push('markSent'),
    async release() {
      calls.push('release');
    },
    async takeBudget() {
      calls.push('takeBudget');
      return options.budget === false
        ? { ok: false, retryAt: 42 }
        : { ok: true, giveBack: () => calls.push('giveBack') };
    },
    returnPath: () => 'bounces+x@bounces.example.org',
    async send(mail) {
      calls.push('send');
      sent.push(mail);
      return options.send ? options.send() : '250 ok';
    },
  };
  return { deps, calls, sent };
}

const fresh = { ledger: undefined, suppressed: false };

test('a message is claimed only once an SMTP connection is free for it', async () => {
  const { deps, calls } = fakes();
  let grant: () => void = () => undefined;
  const slotFree = new Promise<void>((resolve) => {
    grant = resolve;
  });
  const outcome = sendMessage(record, fresh, {
    ...deps,
    smtpSlot: async (task) => {
      await slotFree;
      return task();
    },
  });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(calls, [], 'nothing is claimed while every connection is busy');
  grant();
  assert.equal((await outcome).kind, 'sent');
  assert.deepEqual(calls, ['claim', 'takeBudget', 'send', 'markSent']);
});
const error = (fields: Record<string, unknown>) => Object.assign(new Error('failed'), fields);

test('a new message is claimed, takes a budget slot, is sent, then marked sent', async () => {
  const { deps, calls, sent } = fakes();
  assert.deepEqual(await sendMessage(record, fresh, deps), {
    kind: 'sent',
    response: '250 ok',
    resent: false,
  });
  assert.deepEqual(calls, ['claim', 'takeBudget', 'send', 'markSent']);
  assert.equal(sent[0]?.envelope.from, 'bounces+x@bounces.example.org');
});

const atMostOnce: NotifyEmailSend = { ...record, delivery: 'at_most_once' };
const unconfirmed = { ledger: 'sending', suppressed: false } as const;

test('already sent, suppressed, or at-most-once mail left unconfirmed: no claim, no budget, no SMTP', async () => {
  for (const [message, known, kind] of [
    [record, { ledger: 'sent', suppressed: false }, 'duplicate'],
    [atMostOnce, unconfirmed, 'ambiguous'],
    [record, { ledger: undefined, suppressed: true }, 'suppressed'],
    [record, { ledger: 'sending', suppressed: true }, 'suppressed'],
  ] as const) {
    const { deps, calls } = fakes();
    assert.equal((await sendMessage(message, known, deps)).kind, kind);
    assert.deepEqual(calls, []);
  }
});

test('at-least-once mail an earlier attempt left unconfirmed is sent again under the same Message-ID', async () => {
  const first = fakes();
  await sendMessage(record, fresh, first.deps);
  const again = fakes();
  assert.deepEqual(await sendMessage(record, unconfirmed, again.deps), {
    kind: 'sent',
    response: '250 ok',
    resent: true,
  });
  assert.deepEqual(again.calls, ['retake', 'takeBudget', 'send', 'markSent']);
  assert.equal(again.sent[0]?.messageId, first.sent[0]?.messageId);
});

test('transactional mail is always sent again, even if the record says at most once', async () => {
  const { deps } = fakes();
  const outcome = await sendMessage({ ...atMostOnce, kind: 'transactional' }, unconfirmed, deps);
  assert.equal(outcome.kind === 'sent' && outcome.resent, true);
});

test('losing the claim to an earlier attempt spends no budget', async () => {
  for (const [claim, kind] of [
    ['sent', 'duplicate'],
    ['sending', 'ambiguous'],
  ] as const) {
    const { deps, calls } = fakes({ claim });
    assert.equal((await sendMessage(record, fresh, deps)).kind, kind);
    assert.deepEqual(calls, ['claim']);
  }
});

test('no budget left: the claim is released so the held message can go later', async () => {
  const { deps, calls } = fakes({ budget: false });
  assert.deepEqual(await sendMessage(record, fresh, deps), { kind: 'no-budget', retryAt: 42 });
  assert.deepEqual(calls, ['claim', 'takeBudget', 'release']);
});

test('a definite failure releases the claim and gives the slot back', async () => {
  const refused = error({ code: 'ESOCKET', originalCode: 'ECONNREFUSED', command: 'CONN' });
  const { deps, calls } = fakes({ send: () => Promise.reject(refused) });
  const outcome = await sendMessage(record, fresh, deps);
  assert.equal(outcome.kind === 'failed' && outcome.failure.kind, 'transient');
  assert.equal(outcome.kind === 'failed' && outcome.unreachable, true);
  assert.deepEqual(calls, ['claim', 'takeBudget', 'send', 'release', 'giveBack']);
});

test('a 5xx for the recipient is a recipient failure, and nothing stays claimed', async () => {
  const gone = error({
    code: 'EENVELOPE',
    responseCode: 550,
    command: 'RCPT TO',
    response: '550 5.1.1 No such user',
  });
  const { deps, calls } = fakes({ send: () => Promise.reject(gone) });
  const outcome = await sendMessage(record, fresh, deps);
  assert.equal(outcome.kind === 'failed' && outcome.failure.kind, 'recipient');
  assert.ok(calls.includes('release'));
});

test('a session that broke without a reply keeps the claim and the slot: it may have been delivered', async () => {
  const dropped = error({ code: 'ECONNECTION', command: 'CONN' });
  for (const [message, retry] of [
    [record, true],
    [atMostOnce, false],
  ] as const) {
    const { deps, calls } = fakes({ send: () => Promise.reject(dropped) });
    const outcome = await sendMessage(message, fresh, deps);
    assert.equal(outcome.kind === 'ambiguous' && outcome.retry, retry);
    assert.deepEqual(calls, ['claim', 'takeBudget', 'send']);
  }
});

test('a record that cannot become a mail is unsendable before anything is claimed', async () => {
  const { deps, calls } = fakes();
  const outcome = await sendMessage({ ...record, to: 'a@example.org, b@example.org' }, fresh, deps);
  assert.equal(outcome.kind, 'unsendable');
  assert.deepEqual(calls, []);
});
