/**
 * The JSON logger every Tidings process uses. Two layers keep secrets and personal data out of
 * logs: pino's key-based `redact` for fields that are secret whatever they hold, and a text scrub
 * of every finished line for e-mail addresses and URL passwords wherever they appear.
 */
import { hostname } from 'node:os';
import { type DestinationStream, type LevelWithSilent, type Logger, pino } from 'pino';
import { scrubText } from './scrub.ts';

export interface LoggerOptions {
  service: string;
  level: LevelWithSilent;
  dc: string;
  /** Where lines go; stdout by default. Tests pass a stream that captures them. */
  destination?: DestinationStream;
}

const SECRET_KEYS = [
  'password',
  'passwd',
  // nodemailer's auth option, and the short forms other clients use.
  'pass',
  'pwd',
  'secret',
  'clientSecret',
  'client_secret',
  'token',
  'accessToken',
  'access_token',
  'refreshToken',
  'refresh_token',
  'apiKey',
  'api_key',
  'apikey',
  'privateKey',
  'private_key',
  'authorization',
  'Authorization',
  'cookie',
  'Cookie',
  'set-cookie',
  'Set-Cookie',
  'connectionString',
  'DATABASE_URL',
];

// pino paths have no "any depth" wildcard; spell out the top level and three levels below it.
const MAX_DEPTH = 3;

const REDACT_PATHS: readonly string[] = SECRET_KEYS.flatMap((key) => {
  const plain = /^[A-Za-z_$][\w$]*$/.test(key);
  return Array.from({ length: MAX_DEPTH + 1 }, (_, depth) => {
    const parents = Array(depth).fill('*').join('.');
    if (!plain) return `${parents}["${key}"]`;
    return parents ? `${parents}.${key}` : key;
  });
});

export function createLogger({ service, level, dc, destination }: LoggerOptions): Logger {
  const options = {
    level,
    base: { service, dc, pid: process.pid, hostname: hostname() },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
    redact: { paths: [...REDACT_PATHS], censor: '[Redacted]' },
    hooks: { streamWrite: scrubText },
  };
  return destination ? pino(options, destination) : pino(options);
}
