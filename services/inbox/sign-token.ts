/**
 * Signs an inbox token the way the upstream app does, for development and for trying the API:
 *   INBOX_TOKEN_KEYS=kid:base64secret node_modules/.bin/node services/inbox/sign-token.ts <user id> [lifetime]
 * The lifetime is a duration (default 1h) and must not exceed the inbox's INBOX_TOKEN_MAX_TTL.
 */
import { parseDuration } from '../../libs/config/duration.ts';
import { parseTokenKeyRing, signInboxToken } from './token.ts';

const [userId, lifetime = '1h'] = process.argv.slice(2);
const ttlMs = parseDuration(lifetime);
const keys = process.env.INBOX_TOKEN_KEYS;
if (!userId || ttlMs === undefined || !keys) {
  process.stderr.write(
    'usage: INBOX_TOKEN_KEYS=kid:base64secret sign-token.ts <user id> [lifetime, e.g. 1h]\n',
  );
  process.exit(2);
}
process.stdout.write(`${await signInboxToken(parseTokenKeyRing(keys), userId, { ttlMs })}\n`);
