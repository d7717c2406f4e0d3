/**
 * One-click unsubscribe (RFC 8058) without a login: the link carries a signed, expiring token
 * naming the person and what to stop (the categories a mail carries, or all email). Tokens are HMAC-SHA256 signed
 * with a key chosen by key id, so keys rotate without breaking mail already delivered: sign with
 * the newest, keep verifying with the older ones until their tokens have expired.
 *
 * Token: `<key id>.<base64url JSON claims>.<base64url signature over "<key id>.<claims>">`,
 * URL-safe and free of anything that could end a mail header.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { parseKeyEntries } from '../../libs/config/key-ring.ts';

export interface UnsubscribeClaims {
  readonly userId: string;
  /**
   * Every category the mail carries (one for instant mail, several for a bundle or digest that
   * mixes them): the POST turns off each. null: every category on the channel.
   */
  readonly categories: readonly string[] | null;
  readonly channel: 'email';
  /** ms since the epoch. */
  readonly expiresAt: number;
}

export interface UnsubscribeKeyRing {
  /** Key id new tokens are signed with. */
  readonly signingKeyId: string;
  readonly keys: ReadonlyMap<string, Uint8Array>;
}

export type VerifyResult =
  | { readonly ok: true; readonly claims: UnsubscribeClaims }
  | { readonly ok: false; readonly reason: 'malformed' | 'unknown-key' | 'bad-signature' | 'expired' };

/**
 * Parses `kid:base64secret[,kid:base64secret…]` (EMAIL_UNSUBSCRIBE_KEYS); the first entry signs.
 */
export function parseKeyRing(spec: string): UnsubscribeKeyRing {
  const entries = parseKeyEntries(spec, {
    what: 'unsubscribe',
    id: /^[A-Za-z0-9_-]{1,32}$/,
    idExpect: 'key id of [A-Za-z0-9_-]',
  });
  return { signingKeyId: entries[0]!.id, keys: new Map(entries.map((e) => [e.id, e.secret])) };
}

function signature(key: Uint8Array, signed: string): Buffer {
  return createHmac('sha256', key).update(signed).digest();
}

export function signUnsubscribeToken(ring: UnsubscribeKeyRing, claims: UnsubscribeClaims): string {
  const key = ring.keys.get(ring.signingKeyId);
  if (!key) throw new Error(`signing key ${ring.signingKeyId} is not in the key ring`);
  const body = Buffer.from(
    JSON.stringify({ u: claims.userId, c: claims.categories, ch: claims.channel, exp: claims.expiresAt }),
  ).toString('base64url');
  const signed = `${ring.signingKeyId}.${body}`;
  return `${signed}.${signature(key, signed).toString('base64url')}`;
}

// A digest names at most as many categories as the registry has; more is not a token we signed.
const MAX_CATEGORIES = 64;

function isCategoryList(value: unknown): value is string[] {
  return (
    Array.isArray(value) &&
    value.length > 0 &&
    value.length <= MAX_CATEGORIES &&
    value.every((c) => typeof c === 'string' && c !== '')
  );
}

function readClaims(body: string): UnsubscribeClaims | null {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
  } catch {
    return null;
  }
  if (typeof raw !== 'object' || raw === null) return null;
  const { u, c, ch, exp } = raw as Record<string, unknown>;
  if (typeof u !== 'string' || u === '') return null;
  // A single string: a token signed before tokens named several categories (still within its TTL).
  const categories = typeof c === 'string' ? [c] : c;
  if (categories !== null && !isCategoryList(categories)) return null;
  if (ch !== 'email' || typeof exp !== 'number' || !Number.isFinite(exp)) return null;
  return { userId: u, categories, channel: ch, expiresAt: exp };
}

/**
 * A token as signUnsubscribeToken writes it: key id, canonical unpadded base64url claims and a
 * 43-character signature, nothing more. Node's base64url decoder skips characters it does not know
 * and ignores padding, so without this `<token>!!` or `<token>=` would verify as the token itself.
 */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{1,32}\.[A-Za-z0-9_-]{1,2048}\.[A-Za-z0-9_-]{43}$/;
const canonical = (part: string) => Buffer.from(part, 'base64url').toString('base64url') === part;

/** Checks the signature before reading the claims: nothing unsigned is ever parsed as trusted. */
export function verifyUnsubscribeToken(ring: UnsubscribeKeyRing, token: string, now: number): VerifyResult {
  if (!TOKEN_SHAPE.test(token)) return { ok: false, reason: 'malformed' };
  const [keyId = '', body = '', sig = ''] = token.split('.');
  if (!canonical(body) || !canonical(sig)) return { ok: false, reason: 'malformed' };
  const key = ring.keys.get(keyId);
  if (!key) return { ok: false, reason: 'unknown-key' };
  const expected = signature(key, `${keyId}.${body}`);
  const given = Buffer.from(sig, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected))
    return { ok: false, reason: 'bad-signature' };
  const claims = readClaims(body);
  if (!claims) return { ok: false, reason: 'malformed' };
  if (claims.expiresAt <= now) return { ok: false, reason: 'expired' };
  return { ok: true, claims };
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

export interface ListUnsubscribeOptions {
  /** The endpoint that takes `?token=`: https, or http on loopback for development. */
  readonly endpoint: string;
  readonly token: string;
  /** Optional mailto fallback for clients without one-click, e.g. unsubscribe@mail.example.org. */
  readonly mailto?: string;
}

/**
 * List-Unsubscribe and List-Unsubscribe-Post header values (RFC 2369, RFC 8058). The POST body a
 * mailbox provider sends is `List-Unsubscribe=One-Click` to the same https URL.
 */
export function listUnsubscribeHeaders(options: ListUnsubscribeOptions): Record<string, string> {
  const url = new URL(options.endpoint);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname)))
    throw new Error(`unsubscribe endpoint must be https (RFC 8058), got ${url.protocol}//${url.host}`);
  url.searchParams.set('token', options.token);
  const targets = [`<${url.href}>`];
  if (options.mailto !== undefined) {
    if (!/^[^\s<>@,]+@[^\s<>@,?]+$/.test(options.mailto))
      throw new Error(`unsubscribe mailto must be a plain address, got ${JSON.stringify(options.mailto)}`);
    targets.push(`<mailto:${options.mailto}?subject=${encodeURIComponent(`unsubscribe ${options.token}`)}>`);
  }
  return {
    'List-Unsubscribe': targets.join(', '),
    'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
  };
}
