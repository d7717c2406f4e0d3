/**
 * Masks personal data and credentials inside free text: e-mail addresses (jane@example.org →
 * j***@example.org) and URL passwords (postgres://u:pw@host → postgres://u:***@host). Runs over
 * whole serialized log lines, so it reaches messages, nested string fields, error messages and
 * stacks alike; key-based redaction cannot see an address inside a sentence.
 *
 * Addresses are read in every RFC 5321 form a log line may carry them, since reports and SMTP
 * replies are written by outsiders: any atext local part (`_jane`, `-jane`, `j.o'hara`), a quoted
 * local part (`"jane doe"@…`, JSON-escaped or not), a domain name or an address literal
 * (`jane@[192.0.2.1]`, `[IPv6:…]`), and right after a `/` (`/suppressions/jane@…`). Every part is
 * bounded (64 for the local part, as RFC 5321, and a fixed number of labels), so the scan stays
 * linear on any line.
 */

// The password may itself contain "@" (badly encoded): mask up to the last "@" of the authority.
// Quotes and backslashes end the match so it never runs across JSON string boundaries. Scheme,
// user and password are bounded, or a long run of scheme characters is rescanned from each start.
const URL_PASSWORD = /([a-z][a-z0-9+.-]{0,31}:\/\/[^\s:/@"\\]{0,256}:)[^\s/"\\]{1,256}@/gi;

// RFC 5322 atext, less "/" (a path separator far more often than part of a local part) and "*"
// as first character (so what is already masked, and "***@" after a URL password, stays as it is).
const ATEXT = "\\p{L}\\p{N}!#$%&'*+=?^_`{|}~.\\-";
const FIRST = "\\p{L}\\p{N}!#$%&'+=?^_`{|}~.\\-";
const DOMAIN =
  '(?:[\\p{L}\\p{N}][\\p{L}\\p{N}-]{0,62}(?:\\.[\\p{L}\\p{N}-]{1,63}){0,8}\\.\\p{L}{2,63}|\\[(?:IPv6:)?[0-9A-Fa-f:.]{2,45}\\])';

// Starts right after a JSON escape (\n, \u0001, \", ...), which the match keeps whole so the line
// stays valid JSON, or else where no local-part character precedes (not in the middle of a word)
// and not right after "//" (the user of a password-less URL, postgres://postgres@db, is no person).
const EMAIL = new RegExp(
  `(?:(\\\\(?:u[0-9a-fA-F]{4}|["\\\\/bfnrt]))|(?<![${ATEXT}\\\\]|\\/\\/))` +
    `(?:(\\\\?")[^"\\\\\\r\\n]{1,64}\\2|([${FIRST}])[${ATEXT}]{0,63})@(${DOMAIN})`,
  'gu',
);

const mask = (
  _: string,
  jsonEscape = '',
  quote: string | undefined,
  first: string | undefined,
  domain: string,
) => `${jsonEscape}${quote ? `${quote}***${quote}` : `${first}***`}@${domain}`;

export function scrubText(text: string): string {
  // Every pattern needs an "@"; a line without one (most lines) costs a single scan.
  if (!text.includes('@')) return text;
  return text.replace(URL_PASSWORD, '$1***@').replace(EMAIL, mask);
}
