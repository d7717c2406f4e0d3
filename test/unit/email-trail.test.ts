import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { digestDecision, digestName, senderDecisions } from '../../services/email/email-trail.ts';

const schedule = { hour: 8, weekday: 1, jitterMs: 600_000 };
const about = { eventId: 'ev-1', recipientId: 'u1', notificationId: 'n1' };

describe('digest side', () => {
  test('a digest is named by its local slot and zone, not by the jittered minute', () => {
    assert.equal(digestName('daily', 'Europe/Berlin', schedule), 'the 08:00 daily digest, Europe/Berlin');
    assert.equal(
      digestName('weekly', 'America/New_York', { ...schedule, hour: 17 }),
      'the Monday 17:00 weekly digest, America/New_York',
    );
    // A timezone Intl does not know gets its digest in UTC, and the trail says so.
    assert.equal(digestName('daily', 'Mars/Olympus', schedule), 'the 08:00 daily digest, UTC');
  });

  test('queued says for which digest and when it is due', () => {
    const dueAt = Date.parse('2026-12-02T07:04:00Z');
    assert.deepEqual(
      digestDecision(about, {
        kind: 'queued',
        frequency: 'daily',
        dueAt,
        timezone: 'Europe/Berlin',
        schedule,
      }),
      {
        ...about,
        channel: 'email',
        outcome: 'queued',
        reason: 'daily-digest',
        dueAt,
        detail: 'the 08:00 daily digest, Europe/Berlin',
      },
    );
  });

  test('bundled points at the bundle key; sent at once at the send id; read on the web is a drop', () => {
    assert.deepEqual(digestDecision(about, { kind: 'bundled', bundleKey: 'talk:Page', dueAt: 5 }), {
      ...about,
      channel: 'email',
      outcome: 'bundled',
      ref: 'talk:Page',
      dueAt: 5,
    });
    const sent = digestDecision(about, { kind: 'sent-now', sendId: 's1', transactional: true });
    assert.deepEqual([sent.outcome, sent.reason, sent.ref], ['sent_now', 'transactional', 's1']);
    const read = digestDecision(about, { kind: 'read-on-web' });
    assert.deepEqual([read.outcome, read.reason], ['dropped', 'read-on-web']);
  });
});

describe('sender', () => {
  const message = {
    send_id: 'send-1',
    notification_ids: ['n1', 'n2'],
    event_ids: { n1: 'ev-1', n2: 'ev-2' },
    recipient_id: 'u1',
  };

  test('a digest of two notifications tells each one, under its own event, with the relay’s reply', () => {
    const told = senderDecisions(message, {
      kind: 'sent',
      response: '250 2.0.0 queued as 7F3',
      resent: false,
    });
    assert.deepEqual(
      told.map((d) => [d.notificationId, d.eventId, d.outcome, d.ref, d.detail]),
      [
        ['n1', 'ev-1', 'accepted', 'send-1', '250 2.0.0 queued as 7F3'],
        ['n2', 'ev-2', 'accepted', 'send-1', '250 2.0.0 queued as 7F3'],
      ],
    );
    const resent = senderDecisions(message, { kind: 'sent', response: '250 ok', resent: true });
    assert.deepEqual(new Set(resent.map((d) => d.outcome)), new Set(['resent']));
  });

  test('a duplicate tells nothing: the first attempt told it', () => {
    assert.deepEqual(senderDecisions(message, { kind: 'duplicate' }), []);
  });

  test('each failure has its outcome and reason', () => {
    const one = (outcome: Parameters<typeof senderDecisions>[1]) => {
      const [d] = senderDecisions({ ...message, notification_ids: ['n1'] }, outcome);
      return [d!.outcome, d!.reason ?? null, d!.dueAt ?? null];
    };
    assert.deepEqual(one({ kind: 'suppressed' }), ['suppressed', 'address-suppressed', null]);
    assert.deepEqual(one({ kind: 'no-budget', retryAt: 42 }), ['deferred', 'send-budget', 42]);
    assert.deepEqual(one({ kind: 'ambiguous', detail: 'reset', retry: true }), [
      'deferred',
      'smtp-session-broke',
      null,
    ]);
    assert.deepEqual(one({ kind: 'ambiguous', detail: 'reset', retry: false }), [
      'dropped',
      'outcome-unknown',
      null,
    ]);
    assert.deepEqual(one({ kind: 'unsendable', detail: 'bad header' }), [
      'dead_lettered',
      'unsendable',
      null,
    ]);
    const failed = (failure: Extract<Parameters<typeof senderDecisions>[1], { kind: 'failed' }>['failure']) =>
      one({ kind: 'failed', failure, unreachable: false });
    assert.deepEqual(
      failed({ kind: 'recipient', smtpCode: 550, status: '5.1.1', detail: '550 no such user' }),
      ['bounced', 'relay-refused', null],
    );
    assert.deepEqual(failed({ kind: 'rejected', smtpCode: 554, status: null, detail: 'spam' }), [
      'dead_lettered',
      'smtp-rejected',
      null,
    ]);
    assert.deepEqual(failed({ kind: 'transient', detail: '451 try later' }), [
      'deferred',
      'smtp-transient',
      null,
    ]);
    assert.deepEqual(
      one({ kind: 'failed', failure: { kind: 'transient', detail: 'ECONNREFUSED' }, unreachable: true }),
      ['deferred', 'smtp-unreachable', null],
    );
  });

  test('a record from before event ids travelled names no event rather than a wrong one', () => {
    const [d] = senderDecisions({ ...message, event_ids: {} }, { kind: 'suppressed' });
    assert.equal(d!.eventId, '');
  });
});
