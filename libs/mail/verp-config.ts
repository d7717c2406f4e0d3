/**
 * The VERP settings, declared once for both ends of a return path: the email sender signs
 * `bounces+<token>@VERP_DOMAIN` with VERP_KEYS, and the bounce receiver verifies tokens with the same
 * ring for the same domain. The email process may run without its sender side (EMAIL_SIDES=digest),
 * so it takes the optional form and requires them when the sender runs; bounce always needs them.
 */
import type { ConfigRule } from '../config/load.ts';
import { str } from '../config/vars.ts';
import { parseVerpKeyring, type VerpKeyring } from './verp.ts';

const DOMAIN = {
  pattern: /^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/,
  expect: 'a host name',
  help: 'domain of the VERP return paths (bounces+<token>@<domain>): the email sender signs them, the bounce service receives mail for it and refuses other domains',
} as const;
const KEYS = {
  secret: true,
  help: '<key id 0-15>:<base64 secret of 32+ bytes>[,...]; the first signs new return paths; the same ring in the email sender and the bounce service',
} as const;

export const verpSpec = { VERP_DOMAIN: str(DOMAIN), VERP_KEYS: str(KEYS) };
export const optionalVerpSpec = {
  VERP_DOMAIN: str({ ...DOMAIN, optional: true }),
  VERP_KEYS: str({ ...KEYS, optional: true }),
};

/** A key ring that does not parse is a start-up error naming VERP_KEYS, not a failure at the first send. */
export const verpKeysRule: ConfigRule<{ VERP_KEYS?: string | undefined }> = {
  vars: ['VERP_KEYS'],
  check: (c) => {
    if (c.VERP_KEYS === undefined) return undefined;
    try {
      parseVerpKeyring(c.VERP_KEYS);
      return undefined;
    } catch (error) {
      return (error as Error).message;
    }
  },
};

export interface VerpSettings {
  readonly domain: string;
  readonly keyring: VerpKeyring;
}

export function verpSettingsOf(config: { VERP_DOMAIN: string; VERP_KEYS: string }): VerpSettings {
  return { domain: config.VERP_DOMAIN, keyring: parseVerpKeyring(config.VERP_KEYS) };
}
