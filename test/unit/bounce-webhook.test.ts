import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  createReplayCache,
  parseWebhook,
  signWebhook,
  verifyWebhookSignature,
} from '../../services/bounce/webhook.ts';

const NOW = Date.parse('2026-11-21T12:00:00Z');
const MINUTE = 60_000;
const OPTIONS = { now: NOW, toleranceMs: 5 * MINUTE };
const SECRET = 'webhook-secret';

const BOUNCE = JSON.stringify({
  notificationType: 'Bounce',
  bounce: {
    bounceType: 'Permanent',
    bounceSubType: 'General',
    bouncedRecipients: [
      {
        emailAddress: 'Alice <alice@example.com>',
        action: 'failed',
        status: '5.1.1',
        diagnosticCode: 'smtp; 550 5.1.1 user unknown',
      },
    ],
    timestamp: '2026-11-21T11:59:58.000Z',
  },
  mail: {
    messageId: '0100018c-1111-2222-3333-444444444444-000000',
    source: 'Wikipedia <wiki@tidings.example.org>',
    destination: ['alice@example.com'],
    headers: [
      { name: 'Message-ID', value: '<3f9a@tidings.example.org>' },
      { name: 'X-Tidings-Send-Id', value: '3f9a0c1b7d2e4a6f8b0c1d2e3f4a5b6c' },
    ],
  },
});

describe('webhook signatures', () => {
  test('a body signed with the shared secret within the window is accepted', () => {
    const header = signWebhook(BOUNCE, SECRET, NOW - MINUTE);
    assert.equal(verifyWebhookSignature(header, BOUNCE, [SECRET], OPTIONS).ok, true);
    assert.equal(verifyWebhookSignature(header, Buffer.from(BOUNCE), [SECRET], OPTIONS).ok, true);
  });

  test('a signature by another secret, or over another body, is refused', () => {
    const forged = signWebhook(BOUNCE, 'guessed', NOW);
    assert.deepEqual(verifyWebhookSignature(forged, BOUNCE, [SECRET], OPTIONS), {
      ok: false,
      reason: 'bad-signature',
    });
    const header = signWebhook(BOUNCE, SECRET, NOW);
    assert.deepEqual(verifyWebhookSignature(header, `${BOUNCE} `, [SECRET], OPTIONS), {
      ok: false,
      reason: 'bad-signature',
    });
  });

  test('a replayed signature outside the window is stale, even though it is genuine', () => {
    const header = signWebhook(BOUNCE, SECRET, NOW - 10 * MINUTE);
    assert.deepEqual(verifyWebhookSignature(header, BOUNCE, [SECRET], OPTIONS), {
      ok: false,
      reason: 'stale',
    });
    const future = signWebhook(BOUNCE, SECRET, NOW + 10 * MINUTE);
    assert.deepEqual(verifyWebhookSignature(future, BOUNCE, [SECRET], OPTIONS), {
      ok: false,
      reason: 'stale',
    });
  });

  test('the timestamp is covered by the signature', () => {
    const header = signWebhook(BOUNCE, SECRET, NOW - 10 * MINUTE);
    const moved = header.replace(/^t=\d+/, `t=${Math.floor(NOW / 1000)}`);
    assert.deepEqual(verifyWebhookSignature(moved, BOUNCE, [SECRET], OPTIONS), {
      ok: false,
      reason: 'bad-signature',
    });
  });

  test('during a secret rotation either secret is accepted', () => {
    const header = signWebhook(BOUNCE, 'old-secret', NOW);
    assert.equal(verifyWebhookSignature(header, BOUNCE, [SECRET, 'old-secret'], OPTIONS).ok, true);
  });

  test('a signed request is accepted once: its replay within the window is refused', () => {
    let now = NOW;
    const cache = createReplayCache(OPTIONS.toleranceMs, () => now);
    const header = signWebhook(BOUNCE, SECRET, NOW);
    const auth = () => {
      const verdict = verifyWebhookSignature(header, BOUNCE, [SECRET], { ...OPTIONS, now });
      assert.ok(verdict.ok);
      return verdict;
    };
    assert.equal(cache.claim(auth()), true);
    now += MINUTE;
    assert.equal(cache.claim(auth()), false, 'replayed a minute later');
    const other = verifyWebhookSignature(signWebhook(BOUNCE, SECRET, NOW + 1000), BOUNCE, [SECRET], OPTIONS);
    assert.ok(other.ok);
    assert.equal(cache.claim(other), true, 'the provider re-signing the same body is a new request');
  });

  test('a claim given back (the request failed) lets the provider retry the same request', () => {
    const cache = createReplayCache(OPTIONS.toleranceMs, () => NOW);
    const verdict = verifyWebhookSignature(signWebhook(BOUNCE, SECRET, NOW), BOUNCE, [SECRET], OPTIONS);
    assert.ok(verdict.ok);
    assert.equal(cache.claim(verdict), true);
    cache.release(verdict.replayKey);
    assert.equal(cache.claim(verdict), true);
  });

  test('the cache forgets what the window refuses anyway, and never holds more than its maximum', () => {
    let now = NOW;
    const cache = createReplayCache(OPTIONS.toleranceMs, () => now, 10);
    for (let i = 0; i < 50; i++) cache.claim({ replayKey: `k${i}`, signedAt: now });
    assert.ok(cache.size <= 11, `${cache.size} entries`);
    now += OPTIONS.toleranceMs + 1;
    cache.claim({ replayKey: 'fresh', signedAt: now });
    assert.equal(cache.size, 1);
  });

  test('missing and malformed headers are told apart', () => {
    assert.deepEqual(verifyWebhookSignature(undefined, BOUNCE, [SECRET], OPTIONS), {
      ok: false,
      reason: 'missing-signature',
    });
    for (const header of ['v1=abc', `t=${NOW / 1000}`, 't=x,v1=00', `t=${NOW / 1000},v1=zz`]) {
      assert.deepEqual(
        verifyWebhookSignature(header, BOUNCE, [SECRET], OPTIONS),
        { ok: false, reason: 'malformed-signature' },
        header,
      );
    }
  });
});

describe('webhook bodies', () => {
  test('a permanent bounce is a hard finding carrying status, reply code and the message reference', () => {
    const parsed = parseWebhook(BOUNCE);
    assert.ok(parsed.ok);
    assert.equal(parsed.report.source, 'webhook');
    assert.deepEqual(parsed.report.findings, [
      {
        address: 'alice@example.com',
        originalRecipient: null,
        kind: 'hard',
        status: '5.1.1',
        smtpCode: 550,
        diagnostic: '550 5.1.1 user unknown',
      },
    ]);
    assert.equal(
      parsed.report.original?.tidingsHeaders['x-tidings-send-id'],
      '3f9a0c1b7d2e4a6f8b0c1d2e3f4a5b6c',
    );
    assert.equal(parsed.report.original?.from, 'wiki@tidings.example.org');
    assert.equal(parsed.report.original?.messageId, '<3f9a@tidings.example.org>');
  });

  test('transient and undetermined bounces are soft', () => {
    for (const bounceType of ['Transient', 'Undetermined']) {
      const parsed = parseWebhook(
        JSON.stringify({
          eventType: 'Bounce',
          bounce: { bounceType, bouncedRecipients: [{ emailAddress: 'b@example.com', status: '5.2.2' }] },
        }),
      );
      assert.ok(parsed.ok);
      assert.equal(parsed.report.findings[0]?.kind, 'soft', bounceType);
      assert.equal(parsed.report.original, null);
    }
  });

  test('complaints are complaint findings unless their feedback type says otherwise', () => {
    const body = (type?: string) =>
      JSON.stringify({
        notificationType: 'Complaint',
        complaint: { complaintFeedbackType: type, complainedRecipients: [{ emailAddress: 'c@example.com' }] },
      });
    for (const type of [undefined, 'abuse']) {
      const parsed = parseWebhook(body(type));
      assert.ok(parsed.ok);
      assert.deepEqual(
        parsed.report.findings.map((f) => [f.address, f.kind]),
        [['c@example.com', 'complaint']],
      );
    }
    const notSpam = parseWebhook(body('not-spam'));
    assert.ok(notSpam.ok);
    assert.deepEqual(notSpam.report.findings, []);
    assert.deepEqual(notSpam.report.ignored, [{ address: 'c@example.com', why: 'feedback-type not-spam' }]);
  });

  test('other notification types are ignored; broken bodies are refused with a reason', () => {
    const delivery = parseWebhook(JSON.stringify({ notificationType: 'Delivery', delivery: {} }));
    assert.ok(delivery.ok);
    assert.deepEqual(delivery.report.findings, []);
    for (const body of [
      'not json',
      '[]',
      '{}',
      '{"notificationType":"Bounce"}',
      '{"eventType":"Complaint"}',
    ]) {
      const parsed = parseWebhook(body);
      assert.equal(parsed.ok, false, body);
      assert.ok(!parsed.ok && parsed.reason.length > 0);
    }
  });
});
