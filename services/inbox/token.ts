/**
 * Inbox tokens: a short-lived JWT (HS256, jose) per person, signed by the upstream app with a key
 * of the ring it shares with the inbox; the `kid` header names the key, so keys rotate. The token's
 * `sub` is the only identity the inbox knows; `exp` must not lie further than the maximum lifetime
 * past `iat`, so a leaked token is worth minutes, not days.
 */
import { errors, jwtVerify, SignJWT } from 'jose';
import { type KeyEntry, parseKeyEntries } from '../../libs/config/key-ring.ts';

export const TOKEN_AUDIENCE = 'tidings-inbox';

export interface TokenKeyRing {
  /** The first key signs. */
  readonly signing: KeyEntry;
  readonly byId: ReadonlyMap<string, KeyEntry>;
}

export function parseTokenKeyRing(spec: string): TokenKeyRing {
  const keys = parseKeyEntries(spec, {
    what: 'inbox token',
    id: /^[A-Za-z0-9_-]{1,32}$/,
    idExpect: 'key id',
  });
  const [signing] = keys;
  if (!signing) throw new Error('invalid inbox token key ring: no keys');
  return { signing, byId: new Map(keys.map((k) => [k.id, k])) };
}

export async function signInboxToken(
  ring: TokenKeyRing,
  userId: string,
  { ttlMs, now = Date.now() }: { ttlMs: number; now?: number },
): Promise<string> {
  const iat = Math.floor(now / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', kid: ring.signing.id, typ: 'JWT' })
    .setSubject(userId)
    .setAudience(TOKEN_AUDIENCE)
    .setIssuedAt(iat)
    .setExpirationTime(iat + Math.max(1, Math.round(ttlMs / 1000)))
    .sign(ring.signing.secret);
}

export type TokenRefusal = 'missing' | 'malformed' | 'unknown-key' | 'bad-signature' | 'expired' | 'too-long';

export type TokenCheck = { ok: true; userId: string } | { ok: false; reason: TokenRefusal };

/** Tokens are a few hundred bytes; a longer one is refused before it is parsed. */
const MAX_TOKEN_CHARS = 2_048;

export async function verifyInboxToken(
  ring: TokenKeyRing,
  token: string | undefined,
  { maxTtlMs, now = Date.now() }: { maxTtlMs: number; now?: number },
): Promise<TokenCheck> {
  if (!token) return { ok: false, reason: 'missing' };
  if (token.length > MAX_TOKEN_CHARS) return { ok: false, reason: 'malformed' };
  let unknownKey = false;
  try {
    const { payload } = await jwtVerify(
      token,
      (header) => {
        const key = header.kid === undefined ? undefined : ring.byId.get(header.kid);
        if (!key) {
          unknownKey = true;
          throw new Error('unknown key id');
        }
        return key.secret;
      },
      {
        algorithms: ['HS256'],
        audience: TOKEN_AUDIENCE,
        requiredClaims: ['sub', 'exp', 'iat'],
        currentDate: new Date(now),
      },
    );
    const { sub, exp, iat } = payload as { sub: string; exp: number; iat: number };
    if ((exp - iat) * 1000 > maxTtlMs) return { ok: false, reason: 'too-long' };
    if (sub === '' || sub.length > 256) return { ok: false, reason: 'malformed' };
    return { ok: true, userId: sub };
  } catch (error) {
    if (unknownKey) return { ok: false, reason: 'unknown-key' };
    if (error instanceof errors.JWTExpired) return { ok: false, reason: 'expired' };
    if (error instanceof errors.JWSSignatureVerificationFailed) return { ok: false, reason: 'bad-signature' };
    return { ok: false, reason: 'malformed' };
  }
}
