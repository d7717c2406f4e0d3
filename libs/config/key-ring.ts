/**
 * Key rings from configuration, `<key id>:<base64 secret>[,…]`: the first entry signs, the others
 * still verify, so keys rotate without refusing what the old ones signed (unsubscribe links, VERP
 * return paths). Every problem is reported at once, without echoing secrets.
 */

export interface KeyEntry {
  readonly id: string;
  readonly secret: Buffer;
}

export interface KeyRingFormat {
  /** What the ring is for, in the error: "unsubscribe", "VERP". */
  readonly what: string;
  readonly id: RegExp;
  /** The id's form in words, for the error. */
  readonly idExpect: string;
  readonly minSecretBytes?: number;
}

export function parseKeyEntries(spec: string, format: KeyRingFormat): KeyEntry[] {
  const minBytes = format.minSecretBytes ?? 32;
  const expected = `<${format.idExpect}>:<base64 secret>`;
  const keys: KeyEntry[] = [];
  const problems: string[] = [];
  const entries = spec
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  for (const [index, entry] of entries.entries()) {
    const colon = entry.indexOf(':');
    const id = colon > 0 ? entry.slice(0, colon) : '';
    if (!format.id.test(id)) {
      problems.push(`entry ${index + 1}: expected ${expected}`);
      continue;
    }
    const secret = Buffer.from(entry.slice(colon + 1), 'base64');
    if (secret.length < minBytes)
      problems.push(`key ${id}: secret must be at least ${minBytes} bytes, got ${secret.length}`);
    if (keys.some((k) => k.id === id)) problems.push(`key ${id}: listed twice`);
    keys.push({ id, secret });
  }
  if (entries.length === 0) problems.push(`no keys: expected ${expected}[,...]`);
  if (problems.length > 0) throw new Error(`invalid ${format.what} key ring: ${problems.join('; ')}`);
  return keys;
}
