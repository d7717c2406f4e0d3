/**
 * Masks personal data and credentials inside free text: e-mail addresses (jane@example.org →
 * j***@example.org) and URL passwords (postgres://u:pw@host → postgres://u:***@host). Runs over
 * whole serialized log lines, so it reaches messages, nested string fields, error messages and
 * stacks alike; key-based redaction cannot see an address inside a sentence.
 */

// The password may itself contain "@" (badly encoded): mask up to the last "@" of the authority.
// Quotes and backslashes end the match so it never runs across JSON string boundaries.
const URL_PASSWORD = /([a-z][a-z0-9+.-]*:\/\/[^\s:/@"\\]*:)[^\s/"\\]+@/gi;

// Starts at a token boundary, or right after a JSON escape (\n, \u0001, ...) which the match keeps
// whole so the line stays valid JSON. Not after "/", so the user of a password-less URL
// (postgres://postgres@db.example.org) is left alone. "*" is no local-part character, so text
// already masked is not masked again.
const EMAIL =
  /(?:(\\(?:u[0-9a-fA-F]{4}|["\\/bfnrt]))|(?<![\p{L}\p{N}._%+/\\-]))([\p{L}\p{N}])[\p{L}\p{N}._%+-]*@([\p{L}\p{N}-]+(?:\.[\p{L}\p{N}-]+)*\.\p{L}{2,})/gu;

export function scrubText(text: string): string {
  // Every pattern needs an "@"; a line without one (most lines) costs a single scan.
  if (!text.includes('@')) return text;
  return text.replace(URL_PASSWORD, '$1***@').replace(EMAIL, '$1$2***@$3');
}
