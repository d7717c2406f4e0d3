/**
 * Signed VERP return paths: `bounces+<token>@<domain>`.
 *
 * The sender gives every message a return path naming what was sent (a send id or notification id),
 * to whom and when; the bounce receiver refuses bounces whose token it did not sign, so nobody can
 * get an address suppressed by mailing a made-up DSN, and acts only on the address the token was
 * issued for, so a token received at one's own address cannot suppress someone else's.
 *
 * The token is lower-case base32 (RFC 4648 alphabet, no padding) because some MTAs lower-case local
 * parts: decoding folds case, so a mangled address still verifies. Layout (bytes):
 *   header(1) = format version (2 bits) | id form (2 bits) | key id (4 bits)
 *   issued-at(4) = seconds since the epoch, big-endian
 *   id(1..17) = the message id, packed by its form
 *   address-mac(8) = HMAC-SHA256 over "address" | the bytes above | SHA-256 of the lower-cased
 *     address, truncated to 64 bits
 *   token-mac(5) = HMAC-SHA256 over "token" | everything before it, truncated to 40 bits
 * The address is bound through its whole 256-bit hash without carrying any of it: a token proves it
 * was issued for an address only to someone holding the key and that address, so finding another
 * address that "matches" means forging a 64-bit MAC online (format 1 carried a 32-bit hash prefix,
 * which an attacker could match with an address of their own in minutes). The token MAC lets the
 * receiver refuse a made-up return path at RCPT TO, before any report is read, where the address
 * it was issued for is not known yet.
 * With the default prefix a 16-byte id makes a 63-character local part, under RFC 5321's 64.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { parseKeyEntries } from '../config/key-ring.ts';

const FORMAT_VERSION = 2;
const HEADER_BYTES = 1 + 4;
const ADDRESS_MAC_BYTES = 8;
const TOKEN_MAC_BYTES = 5;
const FIXED_BYTES = HEADER_BYTES + ADDRESS_MAC_BYTES + TOKEN_MAC_BYTES;
const MAX_LOCAL_PART = 64;
const MAX_KEY_ID = 15;
export const DEFAULT_PREFIX = 'bounces';

/** How the id is packed: hex strings and UUIDs as bytes, anything else as UTF-8. */
const ID_FORMS = ['hex', 'uuid', 'text'] as const;
type IdForm = (typeof ID_FORMS)[number];

export interface VerpKey {
  /** 0–15; travels in the token so old tokens still verify after a rotation. */
  readonly id: number;
  readonly secret: string | Uint8Array;
}

export interface VerpKeyring {
  /** Key id new return paths are signed with. */
  readonly current: number;
  readonly keys: readonly VerpKey[];
}

export interface VerpFields {
  /** The send id or notification id, exactly as given to returnPath(). */
  readonly messageId: string;
  /** What the address MAC was computed over, to check an address against (issuedFor). */
  readonly signed: Uint8Array;
  readonly addressMac: Uint8Array;
  /** ms since the epoch, to the second. */
  readonly issuedAt: number;
  readonly keyId: number;
}

export type VerpFailure =
  | 'malformed'
  | 'foreign-domain'
  | 'unknown-key'
  | 'forged'
  | 'too-old'
  | 'from-the-future';

export type VerpVerification =
  | { readonly ok: true; readonly fields: VerpFields }
  | { readonly ok: false; readonly reason: VerpFailure };

export interface ReturnPathInput {
  readonly messageId: string;
  readonly recipient: string;
  readonly domain: string;
  /** ms since the epoch. */
  readonly now: number;
  readonly prefix?: string;
}

export interface VerifyOptions {
  /** ms since the epoch. */
  readonly now: number;
  /** Tokens older than this are refused: bounces arrive within days, not months. */
  readonly maxAgeMs: number;
  /** Accepted clock skew between senders and the receiver. */
  readonly maxSkewMs?: number;
  /** When given, the address must be at this domain (case-insensitive). */
  readonly domain?: string;
  readonly prefix?: string;
}

/** Lower-case hex SHA-256 of the lower-cased address: the notify.bounce / notify.suppression key. */
export function addressHash(address: string): string {
  return createHash('sha256').update(address.trim().toLowerCase()).digest('hex');
}

/** Whether a verified token was issued for this address (checked against its whole hash). */
export function issuedFor(fields: VerpFields, address: string, keys: readonly VerpKey[]): boolean {
  const key = keys.find((k) => k.id === fields.keyId);
  return key !== undefined && timingSafeEqual(addressMac(key, fields.signed, address), fields.addressMac);
}

/** The signed return path for one message to one recipient. Throws if the id cannot fit. */
export function returnPath(input: ReturnPathInput, keyring: VerpKeyring): string {
  const key = keyring.keys.find((k) => k.id === keyring.current);
  if (!key || key.id < 0 || key.id > MAX_KEY_ID) {
    throw new RangeError(
      `VERP keyring has no usable current key ${keyring.current} (ids are 0–${MAX_KEY_ID})`,
    );
  }
  const { form, bytes } = packId(input.messageId);
  const signed = Buffer.alloc(HEADER_BYTES + bytes.length);
  signed.writeUInt8((FORMAT_VERSION << 6) | (ID_FORMS.indexOf(form) << 4) | key.id, 0);
  signed.writeUInt32BE(Math.floor(input.now / 1000), 1);
  bytes.copy(signed, HEADER_BYTES);
  const body = Buffer.concat([signed, addressMac(key, signed, input.recipient)]);
  const localPart = `${input.prefix ?? DEFAULT_PREFIX}+${base32Encode(Buffer.concat([body, tokenMac(key, body)]))}`;
  if (localPart.length > MAX_LOCAL_PART) {
    throw new RangeError(`VERP local part would be ${localPart.length} characters (max ${MAX_LOCAL_PART})`);
  }
  return `${localPart}@${input.domain}`;
}

export function verifyReturnPath(
  address: string,
  keys: readonly VerpKey[],
  options: VerifyOptions,
): VerpVerification {
  const bare = address.trim().replace(/^<(.*)>$/, '$1');
  const at = bare.lastIndexOf('@');
  if (at < 0) return fail('malformed');
  const local = bare.slice(0, at).toLowerCase();
  if (options.domain !== undefined && bare.slice(at + 1).toLowerCase() !== options.domain.toLowerCase()) {
    return fail('foreign-domain');
  }
  const prefix = `${(options.prefix ?? DEFAULT_PREFIX).toLowerCase()}+`;
  if (!local.startsWith(prefix)) return fail('malformed');
  const raw = base32Decode(local.slice(prefix.length));
  if (!raw || raw.length <= FIXED_BYTES) return fail('malformed');

  const header = raw.readUInt8(0);
  const form = ID_FORMS[(header >> 4) & 0x3];
  if (header >> 6 !== FORMAT_VERSION || !form) return fail('malformed');
  const key = keys.find((k) => k.id === (header & 0xf));
  if (!key) return fail('unknown-key');
  const body = raw.subarray(0, raw.length - TOKEN_MAC_BYTES);
  if (!timingSafeEqual(tokenMac(key, body), raw.subarray(raw.length - TOKEN_MAC_BYTES)))
    return fail('forged');

  const signed = body.subarray(0, body.length - ADDRESS_MAC_BYTES);
  const issuedAt = signed.readUInt32BE(1) * 1000;
  if (issuedAt > options.now + (options.maxSkewMs ?? 5 * 60_000)) return fail('from-the-future');
  if (options.now - issuedAt > options.maxAgeMs) return fail('too-old');
  const messageId = unpackId(form, signed.subarray(HEADER_BYTES));
  if (messageId === null) return fail('malformed');
  return {
    ok: true,
    fields: {
      messageId,
      issuedAt,
      keyId: key.id,
      signed: Buffer.from(signed),
      addressMac: Buffer.from(body.subarray(signed.length)),
    },
  };
}

const fail = (reason: VerpFailure): VerpVerification => ({ ok: false, reason });

// Domain-separated so one MAC can never stand in for the other.
function tokenMac(key: VerpKey, body: Uint8Array): Buffer {
  return createHmac('sha256', key.secret).update('token').update(body).digest().subarray(0, TOKEN_MAC_BYTES);
}

function addressMac(key: VerpKey, signed: Uint8Array, address: string): Buffer {
  return createHmac('sha256', key.secret)
    .update('address')
    .update(signed)
    .update(Buffer.from(addressHash(address), 'hex'))
    .digest()
    .subarray(0, ADDRESS_MAC_BYTES);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const HEX = /^(?:[0-9a-f]{2})+$/;

function packId(id: string): { form: IdForm; bytes: Buffer } {
  const packed: { form: IdForm; bytes: Buffer } = UUID.test(id)
    ? { form: 'uuid', bytes: Buffer.from(id.replaceAll('-', ''), 'hex') }
    : HEX.test(id)
      ? { form: 'hex', bytes: Buffer.from(id, 'hex') }
      : { form: 'text', bytes: Buffer.from(id, 'utf8') };
  if (packed.bytes.length === 0) throw new RangeError('VERP message id is empty');
  return packed;
}

function unpackId(form: IdForm, bytes: Buffer): string | null {
  if (form === 'hex') return bytes.toString('hex');
  if (form === 'uuid') {
    if (bytes.length !== 16) return null;
    const h = bytes.toString('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }
  const text = new TextDecoder('utf-8', { fatal: true });
  try {
    return text.decode(bytes);
  } catch {
    return null;
  }
}

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';

function base32Encode(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

/** null unless `text` is the canonical encoding of some bytes (no stray characters or trailing bits). */
function base32Decode(text: string): Buffer | null {
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const ch of text) {
    const digit = ALPHABET.indexOf(ch);
    if (digit < 0) return null;
    value = ((value << 5) | digit) & 0xfff;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  if (bits >= 5 || (value & ((1 << bits) - 1)) !== 0) return null;
  return Buffer.from(out);
}

/** Parses `<key id 0–15>:<base64 secret>[,…]` (VERP_KEYS); the first entry signs new return paths. */
export function parseVerpKeyring(spec: string): VerpKeyring {
  const entries = parseKeyEntries(spec, {
    what: 'VERP',
    id: /^(?:[0-9]|1[0-5])$/,
    idExpect: `key id 0–${MAX_KEY_ID}`,
  });
  const keys = entries.map((e) => ({ id: Number(e.id), secret: e.secret }));
  return { current: keys[0]!.id, keys };
}
