/**
 * DKIM keys by selector (RFC 6376), for nodemailer's built-in signer, and the DNS records that go
 * with them. `DKIM_KEYS=<selector>:<path to a PEM RSA private key>[,...]`: the first selector signs,
 * the others are only published. Rotation without downtime: add the new selector after the current
 * one and publish its record (`tidings dkim dns`), then move it first (a rolling restart switches
 * signing), and keep the old one listed, and published, until the mail it signed has aged out of
 * mailboxes' verification (a few days); then drop it.
 *
 * Alignment is DMARC's relaxed alignment: two domains align when their organizational domains (the
 * registrable domain under the public suffix list) are equal.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { getDomain } from 'tldts';

export interface DkimKey {
  readonly selector: string;
  /** PEM, as nodemailer's signer takes it. */
  readonly privateKey: string;
  /** The `p=` of the DNS record: the public key, SubjectPublicKeyInfo DER in base64. */
  readonly publicKey: string;
}

export interface DkimKeyRing {
  /** The `d=` of every signature. */
  readonly domain: string;
  /** The first key of DKIM_KEYS: it signs new mail. */
  readonly signing: DkimKey;
  /** Every key, the signing one first: each has a record to keep published. */
  readonly keys: readonly DkimKey[];
}

export interface DkimDnsRecord {
  readonly selector: string;
  readonly signing: boolean;
  /** `<selector>._domainkey.<domain>` */
  readonly name: string;
  readonly type: 'TXT';
  readonly value: string;
  /** The value cut into the 255-byte character-strings one TXT record is made of. */
  readonly strings: readonly string[];
}

// RFC 6376 3.1: a selector is a dot-separated list of sub-domain labels.
const SELECTOR =
  /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
// Providers ignore signatures by shorter keys (RFC 8301 forbids under 1024 bits).
const MIN_BITS = 1024;

function loadKey(selector: string, path: string, read: (path: string) => string): DkimKey | string {
  let pem: string;
  try {
    pem = read(path);
  } catch (error) {
    return `selector ${selector}: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`;
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    return `selector ${selector}: ${path} is not a PEM private key`;
  }
  // nodemailer signs rsa-sha256 only, and would send mail unsigned for any other key.
  if (key.asymmetricKeyType !== 'rsa')
    return `selector ${selector}: ${path} is a ${key.asymmetricKeyType} key; DKIM signing needs RSA (openssl genrsa 2048)`;
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_BITS) return `selector ${selector}: ${path} has ${bits} bits; use at least 2048`;
  const publicKey = createPublicKey(key).export({ type: 'spki', format: 'der' }).toString('base64');
  return { selector, privateKey: key.export({ type: 'pkcs8', format: 'pem' }).toString(), publicKey };
}

/** Throws one error naming every problem; never echoes key material. */
export function parseDkimKeyring(
  spec: string,
  domain: string,
  read: (path: string) => string = (path) => readFileSync(path, 'utf8'),
): DkimKeyRing {
  const problems: string[] = [];
  const keys: DkimKey[] = [];
  const entries = spec
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  if (entries.length === 0) problems.push('expected <selector>:<path to a PEM RSA private key>[,...]');
  for (const [index, entry] of entries.entries()) {
    const colon = entry.indexOf(':');
    const selector = colon > 0 ? entry.slice(0, colon) : '';
    const path = entry.slice(colon + 1);
    if (!SELECTOR.test(selector) || path === '') {
      problems.push(`entry ${index + 1}: expected <selector>:<path to a PEM RSA private key>`);
      continue;
    }
    if (keys.some((k) => k.selector === selector)) {
      problems.push(`selector ${selector}: listed twice`);
      continue;
    }
    const key = loadKey(selector, path, read);
    if (typeof key === 'string') problems.push(key);
    else keys.push(key);
  }
  const [signing] = keys;
  if (problems.length > 0 || !signing) throw new Error(`DKIM_KEYS: ${problems.join('; ')}`);
  return { domain: domain.toLowerCase(), signing, keys };
}

/** The TXT record to publish for each selector of the ring, the signing one first. */
export function dkimDnsRecords(ring: DkimKeyRing): DkimDnsRecord[] {
  return ring.keys.map((key) => {
    const value = `v=DKIM1; k=rsa; p=${key.publicKey}`;
    return {
      selector: key.selector,
      signing: key === ring.signing,
      name: `${key.selector}._domainkey.${ring.domain}`,
      type: 'TXT',
      value,
      strings: value.match(/.{1,255}/g) ?? [],
    };
  });
}

/** The registrable domain (example.org for mail.example.org), or the name itself if it has none. */
export function organizationalDomain(domain: string): string {
  const name = domain.toLowerCase();
  return getDomain(name, { allowPrivateDomains: false }) ?? name;
}

export const aligned = (a: string, b: string): boolean => organizationalDomain(a) === organizationalDomain(b);

/**
 * What mailbox providers would find misaligned for mail From `fromDomain`: DMARC passes through an
 * aligned DKIM `d=` or an aligned SPF domain (the return path's); Gmail and Yahoo want DKIM aligned.
 */
export function alignmentProblems(domains: {
  readonly from: string;
  readonly dkim: string | null;
  readonly returnPath: string;
}): string[] {
  const problems: string[] = [];
  if (domains.dkim === null)
    problems.push(
      `mail From ${domains.from} goes out without a DKIM signature; Gmail and Yahoo reject or junk bulk mail without one (set DKIM_DOMAIN and DKIM_KEYS)`,
    );
  else if (!aligned(domains.from, domains.dkim))
    problems.push(
      `DKIM d=${domains.dkim} does not align with the From domain ${domains.from} (organizational domains ${organizationalDomain(domains.dkim)} and ${organizationalDomain(domains.from)}): DMARC ignores the signature; sign with a domain under ${organizationalDomain(domains.from)}`,
    );
  if (!aligned(domains.from, domains.returnPath))
    problems.push(
      `the VERP return-path domain ${domains.returnPath} does not align with the From domain ${domains.from}: SPF cannot pass DMARC; use a VERP_DOMAIN under ${organizationalDomain(domains.from)}`,
    );
  return problems;
}
