/** The sender side's environment variables. */
import { DEDUP_RETENTION_MS } from '../../libs/config/retention.ts';
import { duration, int, list, str, url } from '../../libs/config/vars.ts';
import { optionalVerpSpec } from '../../libs/mail/verp-config.ts';

export const DEFAULT_SMTP_URL = 'smtp://127.0.0.1:2525';

export const senderSpec = {
  SMTP_URL: url({
    default: DEFAULT_SMTP_URL,
    protocols: ['smtp', 'smtps'],
    secret: true,
    help: 'SMTP relay, smtp://[user:password@]host:port (STARTTLS when offered) or smtps:// (implicit TLS); the password is never logged',
  }),
  SMTP_MAX_CONNECTIONS: int({ default: 5, min: 1, max: 1_000, help: 'pooled SMTP connections' }),
  SMTP_TIMEOUT: duration({
    default: 30_000,
    min: 100,
    help: 'how long connecting, the greeting and each SMTP reply may take',
  }),
  ...optionalVerpSpec,
  DKIM_DOMAIN: str({
    optional: true,
    pattern: /^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/,
    expect: 'a host name',
    help: 'the d= of DKIM signatures, normally the From domain or a parent of it (alignment is checked at start-up); needs DKIM_KEYS',
  }),
  DKIM_KEYS: str({
    optional: true,
    help: '<selector>:<path to a PEM RSA private key, 2048 bits>[,...]: the first signs, the others stay published during a rotation; `tidings dkim dns` prints the TXT records',
  }),
  EMAIL_SEND_RAMP_START: str({
    default: '1970-01-01',
    pattern: /^\d{4}-\d{2}-\d{2}(?:T[\d:.]+Z)?$/,
    expect: 'a UTC date or time like 2026-11-01 or 2026-11-01T09:00:00Z',
    help: 'when the sending IP began its warm-up; day 0 of EMAIL_SEND_DAILY_CAPS',
  }),
  EMAIL_SEND_DAILY_CAPS: list({
    default: ['1000000'],
    pattern: /^\d+$/,
    itemExpect: 'whole numbers',
    help: 'warm-up ramp: the most mail sent on day 0, 1, 2, ... after EMAIL_SEND_RAMP_START; the last holds afterwards',
  }),
  EMAIL_SEND_PER_SECOND: int({ default: 200, min: 1, help: 'sustained sends per second per process' }),
  EMAIL_SEND_BURST: int({ default: 200, min: 1, help: 'sends allowed back to back per process' }),
  EMAIL_SMTP_PROBE_INTERVAL: duration({
    default: 15_000,
    min: 100,
    help: 'while SMTP is unreachable or misconfigured, how often sending is tried again (a held message or a login probe)',
  }),
  EMAIL_OPERATOR_LOG_INTERVAL: duration({
    default: 600_000,
    min: 1_000,
    help: 'an SMTP misconfiguration is logged once per this period while it lasts',
  }),
  EMAIL_SENT_RETENTION: duration({
    default: 30 * 86_400_000,
    min: DEDUP_RETENTION_MS,
    help: 'how long sent ids are remembered; at least the dedup retention (libs/config/retention.ts), the longest replay allowed',
  }),
};
