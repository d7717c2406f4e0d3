/**
 * Provider webhooks: SES-style bounce and complaint notifications as JSON, signed by the provider
 * (or the relay in front of it) with a shared secret.
 *
 * Authentication, Stripe-style: header `X-Tidings-Signature: t=<unix seconds>,v1=<hex>` where the hex
 * is HMAC-SHA256(secret, "<t>.<raw body>"). The timestamp inside the MAC bounds replays to the
 * tolerance window, and the replay cache (createReplayCache) refuses a second use within it: three
 * replays of one signed soft bounce would otherwise suppress the address. Several v1 values and
 * several secrets are accepted so secrets can rotate; each secret has at least
 * MIN_WEBHOOK_SECRET_CHARS characters, so it cannot be guessed from one signed request.
 *
 * Body (the fields read; anything else is ignored):
 *   { "notificationType": "Bounce",            // or "eventType", as SES event publishing names it
 *     "bounce": { "bounceType": "Permanent" | "Transient" | "Undetermined",
 *                 "bouncedRecipients": [{ "emailAddress", "status"?, "diagnosticCode"? }] },
 *     "mail": { "messageId"?, "destination"?: [..], "headers"?: [{ "name", "value" }] } }
 *   { "notificationType": "Complaint",
 *     "complaint": { "complaintFeedbackType"?, "complainedRecipients": [{ "emailAddress" }] }, "mail": {..} }
 * The provider's bounceType is trusted over the status code (Permanent → hard, else soft): it has
 * seen the whole delivery history, we see one line of it.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { BounceFinding, BounceReport, IgnoredRecipient, OriginalMessage } from './bounce-report.ts';
import { isComplaint } from './classify.ts';
import { addressIn } from './header-fields.ts';

export const SIGNATURE_HEADER = 'x-tidings-signature';
export const MIN_WEBHOOK_SECRET_CHARS = 32;

export type WebhookAuthFailure =
  | 'missing-signature'
  | 'malformed-signature'
  | 'stale'
  | 'bad-signature'
  | 'replayed';
export type WebhookAuth =
  | {
      readonly ok: true;
      /** What identifies this signed request for the replay cache: its timestamp and body. */
      readonly replayKey: string;
      /** ms since the epoch. */
      readonly signedAt: number;
    }
  | { readonly ok: false; readonly reason: WebhookAuthFailure };

export interface WebhookAuthOptions {
  /** ms since the epoch. */
  readonly now: number;
  /** How far the signed timestamp may be from now, either way. */
  readonly toleranceMs: number;
}

/** The header value for a body: what the provider side computes (and tests use). */
export function signWebhook(body: string | Uint8Array, secret: string, now: number): string {
  const t = Math.floor(now / 1000);
  return `t=${t},v1=${mac(secret, t, body).toString('hex')}`;
}

export function verifyWebhookSignature(
  header: string | undefined,
  body: string | Uint8Array,
  secrets: readonly string[],
  options: WebhookAuthOptions,
): WebhookAuth {
  if (!header) return { ok: false, reason: 'missing-signature' };
  const parts = header.split(',').map((p) => p.trim().split('='));
  const t = parts.find(([k]) => k === 't')?.[1];
  const signatures = parts.filter(([k, v]) => k === 'v1' && v && /^[0-9a-f]{64}$/i.test(v));
  if (!t || !/^\d{1,12}$/.test(t) || signatures.length === 0)
    return { ok: false, reason: 'malformed-signature' };
  if (Math.abs(options.now - Number(t) * 1000) > options.toleranceMs) return { ok: false, reason: 'stale' };
  // Every comparison runs in full so timing reveals neither which secret nor how many bytes matched.
  let matched = false;
  for (const secret of secrets) {
    const expected = mac(secret, Number(t), body);
    for (const [, v] of signatures) matched = timingSafeEqual(expected, Buffer.from(v!, 'hex')) || matched;
  }
  if (!matched) return { ok: false, reason: 'bad-signature' };
  const replayKey = `${t}.${createHash('sha256').update(body).digest('hex')}`;
  return { ok: true, replayKey, signedAt: Number(t) * 1000 };
}

export interface ReplayCache {
  /** false if this signed request was already claimed and not released. */
  claim(auth: { readonly replayKey: string; readonly signedAt: number }): boolean;
  /** Gives a claim back (the request failed, so the provider's retry of it must pass). */
  release(replayKey: string): void;
  readonly size: number;
}

/**
 * Signed requests seen within the tolerance window. A key is kept until its timestamp is out of
 * the window (after which the signature check refuses it anyway); at `maxEntries` the oldest are
 * dropped, so a flood of validly signed requests costs bounded memory.
 */
export function createReplayCache(toleranceMs: number, now: () => number, maxEntries = 100_000): ReplayCache {
  const seen = new Map<string, number>();
  const expire = () => {
    const t = now();
    for (const [key, until] of seen) {
      if (until > t && seen.size <= maxEntries) break;
      seen.delete(key);
    }
  };
  return {
    claim({ replayKey, signedAt }) {
      expire();
      if (seen.has(replayKey)) return false;
      seen.set(replayKey, signedAt + toleranceMs);
      return true;
    },
    release: (replayKey) => void seen.delete(replayKey),
    get size() {
      return seen.size;
    },
  };
}

function mac(secret: string, t: number, body: string | Uint8Array): Buffer {
  return createHmac('sha256', secret).update(`${t}.`).update(body).digest();
}

export type WebhookParse =
  | { readonly ok: true; readonly report: BounceReport }
  | { readonly ok: false; readonly reason: string };

/** The notification as a BounceReport; types other than Bounce and Complaint (Delivery, Send…) are ignored. */
export function parseWebhook(body: string): WebhookParse {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return { ok: false, reason: 'body is not JSON' };
  }
  if (!isObject(json)) return { ok: false, reason: 'body is not a JSON object' };
  const type = str(json.notificationType) ?? str(json.eventType);
  const original = originalOf(json.mail);
  if (type === 'Bounce') return bounce(json.bounce, original);
  if (type === 'Complaint') return complaint(json.complaint, original);
  if (type === null) return { ok: false, reason: 'no notificationType' };
  return {
    ok: true,
    report: { source: 'webhook', findings: [], ignored: [{ address: null, why: type }], original },
  };
}

function bounce(value: unknown, original: OriginalMessage | null): WebhookParse {
  if (!isObject(value) || !Array.isArray(value.bouncedRecipients)) {
    return { ok: false, reason: 'Bounce without bounce.bouncedRecipients' };
  }
  const kind = value.bounceType === 'Permanent' ? 'hard' : 'soft';
  const findings: BounceFinding[] = [];
  const ignored: IgnoredRecipient[] = [];
  for (const r of value.bouncedRecipients) {
    const address = isObject(r) ? addressIn(str(r.emailAddress)) : null;
    if (!address || !isObject(r)) {
      ignored.push({ address: null, why: 'recipient without emailAddress' });
      continue;
    }
    const diagnostic = str(r.diagnosticCode)?.replace(/^\s*smtp\s*;\s*/i, '') ?? null;
    const code = diagnostic ? /^([245]\d\d)\b/.exec(diagnostic) : null;
    findings.push({
      address,
      originalRecipient: null,
      kind,
      status: /^[245]\.\d{1,3}\.\d{1,3}$/.test(str(r.status) ?? '') ? str(r.status) : null,
      smtpCode: code ? Number(code[1]) : null,
      diagnostic,
    });
  }
  return { ok: true, report: { source: 'webhook', findings, ignored, original } };
}

function complaint(value: unknown, original: OriginalMessage | null): WebhookParse {
  if (!isObject(value) || !Array.isArray(value.complainedRecipients)) {
    return { ok: false, reason: 'Complaint without complaint.complainedRecipients' };
  }
  const feedbackType = str(value.complaintFeedbackType);
  const findings: BounceFinding[] = [];
  const ignored: IgnoredRecipient[] = [];
  for (const r of value.complainedRecipients) {
    const address = isObject(r) ? addressIn(str(r.emailAddress)) : null;
    if (!address) ignored.push({ address: null, why: 'recipient without emailAddress' });
    else if (!isComplaint(feedbackType)) ignored.push({ address, why: `feedback-type ${feedbackType}` });
    else
      findings.push({
        address,
        originalRecipient: null,
        kind: 'complaint',
        status: null,
        smtpCode: null,
        diagnostic: feedbackType,
      });
  }
  return { ok: true, report: { source: 'webhook', findings, ignored, original } };
}

function originalOf(mail: unknown): OriginalMessage | null {
  if (!isObject(mail)) return null;
  const headers = new Map<string, string>();
  for (const h of Array.isArray(mail.headers) ? mail.headers : []) {
    const name = isObject(h) ? str(h.name) : null;
    const value = isObject(h) ? str(h.value) : null;
    if (name && value !== null && !headers.has(name.toLowerCase())) headers.set(name.toLowerCase(), value);
  }
  const tidingsHeaders = Object.fromEntries([...headers].filter(([name]) => name.startsWith('x-tidings-')));
  const destination = Array.isArray(mail.destination) ? mail.destination : [];
  return {
    returnPath: addressIn(headers.get('return-path') ?? null),
    messageId: headers.get('message-id') ?? str(mail.messageId),
    from: addressIn(headers.get('from') ?? str(mail.source)),
    to: destination.map((d) => addressIn(str(d))).filter((a) => a !== null),
    tidingsHeaders,
  };
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
