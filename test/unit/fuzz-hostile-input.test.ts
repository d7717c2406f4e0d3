/**
 * Generated hostile input (fast-check) against the four doors an outsider can knock on: the
 * bounce report parser (mutations of the fixture corpus), the VERP verifier, the unsubscribe token
 * and the webhook signature and body. Each property is what a user relies on: nothing throws, every
 * verdict is a known one, and nothing but the exact signed value verifies.
 *
 * `make test` runs FUZZ_RUNS (default 100) cases per property; `make fuzz` runs many more, with a
 * fresh seed each time (printed by fast-check on a failure, with the shrunk counterexample).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { issuedFor, returnPath, type VerpKeyring, verifyReturnPath } from '../../libs/mail/verp.ts';
import { classifyReport } from '../../services/bounce/classify.ts';
import { parseReport } from '../../services/bounce/report-parser.ts';
import { parseWebhook, signWebhook, verifyWebhookSignature } from '../../services/bounce/webhook.ts';
import {
  parseKeyRing,
  signUnsubscribeToken,
  verifyUnsubscribeToken,
} from '../../services/email/unsubscribe-token.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 100);
const MAX_MESSAGE = 512 * 1024;
const params = { numRuns: RUNS };
const NOW = Date.parse('2026-11-21T12:00:00Z');

const DIR = join(import.meta.dirname, '..', 'fixtures', 'bounces');
const CORPUS = readdirSync(DIR)
  .filter((f) => f.endsWith('.eml'))
  .map((f) => readFileSync(join(DIR, f), 'latin1'));

const FAILURES = new Set([
  'unparseable',
  'no-delivery-status',
  'no-recipients',
  'no-feedback-report',
  'no-feedback-type',
  'unrecognized',
  'invalid-field',
  'too-many-recipients',
]);

/** One edit of a message: a character or a run replaced, a line repeated, a cut, an insertion. */
const edit = fc.oneof(
  fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), text: fc.string({ maxLength: 20 }) }),
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.nat(),
    text: fc.string({ unit: 'binary', maxLength: 200 }),
  }),
  fc.record({
    kind: fc.constant('repeat-line' as const),
    at: fc.nat(),
    times: fc.integer({ min: 2, max: 400 }),
  }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('hostile' as const),
    at: fc.nat(),
    text: fc.constantFrom(
      'a'.repeat(5000),
      '@'.repeat(3000),
      '-'.repeat(5000),
      '\r\n \t'.repeat(500),
      '<'.repeat(2000),
      ';'.repeat(2000),
      '\u001b[2J',
      '=?utf-8?B?',
    ),
  }),
);
type Edit = typeof edit extends fc.Arbitrary<infer E> ? E : never;

function apply(message: string, e: Edit): string {
  const at = e.at % (message.length + 1);
  switch (e.kind) {
    case 'replace':
      return message.slice(0, at) + e.text + message.slice(at + e.text.length);
    case 'insert':
    case 'hostile':
      return message.slice(0, at) + e.text + message.slice(at);
    case 'cut':
      return message.slice(0, at);
    case 'repeat-line': {
      const start = message.lastIndexOf('\n', at) + 1;
      const end = message.indexOf('\n', at);
      const line = message.slice(start, end < 0 ? message.length : end + 1);
      return message.slice(0, start) + line.repeat(e.times) + message.slice(start);
    }
  }
}

describe('fuzz: the bounce report parser', () => {
  test('a mutated corpus report is read or refused with a known reason, never a throw, never unbounded', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...CORPUS),
        fc.array(edit, { minLength: 1, maxLength: 6 }),
        async (sample, edits) => {
          // The receiver refuses mail over BOUNCE_SMTP_MAX_BYTES before parsing; repeated edits of
          // repeated lines would otherwise grow without bound here.
          const raw = edits.reduce((m, e) => apply(m, e).slice(0, MAX_MESSAGE), sample);
          const parsed = await parseReport(Buffer.from(raw, 'latin1'), { maxRecipients: 20 });
          if (!parsed.ok) {
            assert.ok(FAILURES.has(parsed.reason), parsed.reason);
            assert.ok(parsed.detail.length > 0);
            return;
          }
          const report = parsed.report;
          if (report.type === 'delivery-status') {
            assert.ok(report.recipients.length <= 20);
            for (const r of report.recipients) assert.ok(r.address === null || r.address.length <= 1000);
          }
          if (report.type === 'feedback') assert.ok(report.recipients.length <= 20);
          const classified = classifyReport(report);
          for (const f of classified.findings) assert.ok(f.address.length <= 1000);
        },
      ),
      params,
    );
  });
});

describe('fuzz: the VERP verifier', () => {
  const ring: VerpKeyring = { current: 4, keys: [{ id: 4, secret: 'k'.repeat(32) }] };
  const verify = (address: string) =>
    verifyReturnPath(address, ring.keys, { now: NOW, maxAgeMs: 86_400_000, domain: 'b.example' });
  const messageId = fc.oneof(
    fc.uuid({ version: 4 }),
    fc.uint8Array({ minLength: 1, maxLength: 16 }).map((b) => Buffer.from(b).toString('hex')),
    fc.string({ minLength: 1, maxLength: 12, unit: 'grapheme-ascii' }),
  );
  const address = fc.emailAddress({ size: 'small' }).filter((a) => a.length < 200);

  test('any string is refused or verified without a throw', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 300 }),
        fc.stringMatching(/^bounces\+[a-z2-7]{0,70}@b\.example$/),
        (a, b) => {
          for (const candidate of [a, b]) {
            const verdict = verify(candidate);
            if (verdict.ok) assert.fail(`verified made-up ${candidate}`);
          }
        },
      ),
      params,
    );
  });

  test('a token verifies for the address it was issued for, and for no other', () => {
    fc.assert(
      fc.property(messageId, address, address, (id, mailed, other) => {
        fc.pre(mailed.toLowerCase() !== other.toLowerCase());
        const path = returnPath({ messageId: id, recipient: mailed, domain: 'b.example', now: NOW }, ring);
        const verdict = verify(path);
        assert.ok(verdict.ok);
        assert.equal(verdict.fields.messageId, id);
        assert.ok(issuedFor(verdict.fields, mailed, ring.keys));
        assert.ok(!issuedFor(verdict.fields, other, ring.keys));
      }),
      params,
    );
  });

  test('changing any one character of a token makes it refused', () => {
    fc.assert(
      fc.property(
        messageId,
        address,
        fc.nat(),
        fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz234567'),
        (id, mailed, at, ch) => {
          const path = returnPath({ messageId: id, recipient: mailed, domain: 'b.example', now: NOW }, ring);
          const start = path.indexOf('+') + 1;
          const i = start + (at % (path.indexOf('@') - start));
          fc.pre(path[i] !== ch);
          assert.equal(verify(path.slice(0, i) + ch + path.slice(i + 1)).ok, false);
        },
      ),
      params,
    );
  });
});

describe('fuzz: the unsubscribe token', () => {
  const ring = parseKeyRing(`k1:${Buffer.alloc(32, 7).toString('base64')}`);
  const claims = fc.record({
    userId: fc.string({ minLength: 1, maxLength: 40 }),
    categories: fc.option(
      fc.array(fc.string({ minLength: 1, maxLength: 30 }), { minLength: 1, maxLength: 8 }),
      {
        nil: null,
      },
    ),
    channel: fc.constant('email' as const),
    expiresAt: fc.integer({ min: NOW + 1, max: NOW + 10 ** 10 }),
  });

  test('a signed token gives back exactly its claims', () => {
    fc.assert(
      fc.property(claims, (c) => {
        const verdict = verifyUnsubscribeToken(ring, signUnsubscribeToken(ring, c), NOW);
        assert.deepEqual(verdict, { ok: true, claims: { ...c } });
      }),
      params,
    );
  });

  test('any edit of a signed token, and any string, is refused', () => {
    fc.assert(
      fc.property(
        claims,
        fc.nat(),
        fc.string({ minLength: 1, maxLength: 3 }),
        fc.string({ maxLength: 200 }),
        (c, at, text, junk) => {
          const token = signUnsubscribeToken(ring, c);
          const i = at % (token.length + 1);
          const edited = token.slice(0, i) + text + token.slice(i + 1);
          fc.pre(edited !== token);
          assert.equal(verifyUnsubscribeToken(ring, edited, NOW).ok, false, edited);
          assert.equal(verifyUnsubscribeToken(ring, `${token}${text}`, NOW).ok, false);
          assert.equal(verifyUnsubscribeToken(ring, junk, NOW).ok, false);
        },
      ),
      params,
    );
  });
});

describe('fuzz: the webhook verifier and body', () => {
  const SECRET = 's'.repeat(32);
  const options = { now: NOW, toleranceMs: 300_000 };

  test('only the exact signed body verifies; any header is refused or verified without a throw', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 500 }),
        fc.string({ minLength: 1, maxLength: 5 }),
        fc.nat(),
        fc.string({ maxLength: 200 }),
        (body, text, at, header) => {
          const signature = signWebhook(body, SECRET, NOW);
          assert.equal(verifyWebhookSignature(signature, body, [SECRET], options).ok, true);
          const i = at % (body.length + 1);
          const edited = body.slice(0, i) + text + body.slice(i);
          assert.equal(verifyWebhookSignature(signature, edited, [SECRET], options).ok, false);
          assert.equal(verifyWebhookSignature(header, body, [SECRET], options).ok, false);
        },
      ),
      params,
    );
  });

  test('any JSON body is parsed into a report or refused with a reason, never a throw', () => {
    const notification = fc.record({
      notificationType: fc.constantFrom('Bounce', 'Complaint', 'Delivery', 7, null),
      bounce: fc.anything(),
      complaint: fc.anything(),
      mail: fc.anything(),
    });
    fc.assert(
      fc.property(
        fc.oneof(
          fc.json(),
          notification.map((n) => JSON.stringify(n)),
          fc.string(),
        ),
        (body) => {
          const parsed = parseWebhook(body);
          if (!parsed.ok) return assert.ok(parsed.reason.length > 0);
          for (const f of parsed.report.findings) assert.equal(typeof f.address, 'string');
        },
      ),
      params,
    );
  });
});
