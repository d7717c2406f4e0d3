/**
 * The digest side's environment variables, and the checks across them that the variable kinds
 * cannot express (the key ring's format, the unsubscribe endpoint's scheme, the jitter window):
 * digestSettings reports every problem at once, before anything is consumed.
 */
import type { ConfigOf } from '../../libs/config/load.ts';
import { DEDUP_RETENTION_MS } from '../../libs/config/retention.ts';
import { duration, int, port, str, url } from '../../libs/config/vars.ts';
import { type DigestSchedule, validateSchedule } from './digest-schedule.ts';
import { listUnsubscribeHeaders, parseKeyRing, type UnsubscribeKeyRing } from './unsubscribe-token.ts';

const DAY_MS = 86_400_000;

export const digestSpec = {
  EMAIL_FROM: str({
    default: 'Tidings <notifications@mail.example.org>',
    help: 'From header of every mail',
  }),
  EMAIL_SENDING_DOMAIN: str({
    default: 'mail.example.org',
    pattern: /^[A-Za-z0-9.-]+$/,
    expect: 'a host name',
    help: 'domain Message-IDs are minted under; normally the From address domain',
  }),
  EMAIL_SITE_NAME: str({ default: 'Tidings', help: 'site name shown in subjects and bodies' }),
  EMAIL_TEMPLATE_DIR: str({
    optional: true,
    help: 'folder of <category>/<locale>.<subject|text|html>.hbs templates; default the bundled ones',
  }),
  EMAIL_BUNDLE_INTERVAL: duration({
    default: 15 * 60_000,
    min: 1_000,
    max: DAY_MS,
    help: 'after a mail with a bundle key, later ones with that key wait this long and go out together',
  }),
  EMAIL_DIGEST_HOUR: int({ default: 8, min: 0, max: 23, help: 'local hour (0-23) digests go out at' }),
  EMAIL_DIGEST_WEEKDAY: int({
    default: 1,
    min: 0,
    max: 6,
    help: 'local weekday of weekly digests, 0 = Sunday ... 6 = Saturday',
  }),
  EMAIL_DIGEST_JITTER: duration({
    default: 60 * 60_000,
    min: 0,
    max: DAY_MS - 1,
    help: 'digests of one local hour are spread over this window, by a stable per-person offset',
  }),
  EMAIL_DUE_POLL_INTERVAL: duration({
    default: 5_000,
    min: 10,
    help: 'how often due bundles and digests are looked for',
  }),
  EMAIL_DUE_BATCH: int({
    default: 200,
    min: 1,
    max: 5_000,
    help: 'due mails taken per transaction (rows stay locked until their records are acknowledged)',
  }),
  EMAIL_DUE_WORKERS: int({
    default: 1,
    min: 1,
    max: 32,
    help: 'due-mail transactions run at once in this process (SKIP LOCKED shares rows between them)',
  }),
  EMAIL_EMITTED_RETENTION: duration({
    default: 14 * DAY_MS,
    min: DEDUP_RETENTION_MS,
    help: 'how long emitted notification ids are kept for dedup; at least the dedup retention (libs/config/retention.ts)',
  }),
  EMAIL_UNSUBSCRIBE_KEYS: str({
    optional: true,
    secret: true,
    help: 'unsubscribe token keys "kid:base64secret[,kid:base64secret...]", the first signs; make one with `openssl rand -base64 32`',
  }),
  EMAIL_UNSUBSCRIBE_URL: url({
    default: 'http://127.0.0.1:8102/unsubscribe',
    protocols: ['https', 'http'],
    help: 'public one-click unsubscribe endpoint put in mail (https; http only on loopback for development)',
  }),
  EMAIL_UNSUBSCRIBE_MAILTO: str({
    optional: true,
    pattern: /^[^\s<>@,]+@[^\s<>@,?]+$/,
    expect: 'a plain address',
    help: 'optional mailto fallback in List-Unsubscribe',
  }),
  EMAIL_UNSUBSCRIBE_PORT: port({ default: 8102, help: 'port of the public unsubscribe endpoint (no login)' }),
  EMAIL_UNSUBSCRIBE_TTL: duration({
    default: 60 * DAY_MS,
    min: 60_000,
    help: 'how long an unsubscribe link keeps working',
  }),
};

export type DigestConfig = ConfigOf<typeof digestSpec>;

/** What the variables add up to, once checked together. */
export interface DigestSettings {
  readonly keyRing: UnsubscribeKeyRing;
  readonly schedule: DigestSchedule;
}

/** Throws one error naming every problem and how to fix it. */
export function digestSettings(config: DigestConfig): DigestSettings {
  const problems: string[] = [];
  let keyRing: UnsubscribeKeyRing | undefined;
  if (config.EMAIL_UNSUBSCRIBE_KEYS === undefined) {
    problems.push(
      'EMAIL_UNSUBSCRIBE_KEYS: required by the digest side to sign unsubscribe links; set "kid:base64secret" (e.g. k1:$(openssl rand -base64 32))',
    );
  } else {
    try {
      keyRing = parseKeyRing(config.EMAIL_UNSUBSCRIBE_KEYS);
    } catch (error) {
      problems.push(`EMAIL_UNSUBSCRIBE_KEYS: ${(error as Error).message}`);
    }
  }
  try {
    listUnsubscribeHeaders({
      endpoint: config.EMAIL_UNSUBSCRIBE_URL,
      token: 'probe',
      ...(config.EMAIL_UNSUBSCRIBE_MAILTO === undefined ? {} : { mailto: config.EMAIL_UNSUBSCRIBE_MAILTO }),
    });
  } catch (error) {
    problems.push(`EMAIL_UNSUBSCRIBE_URL: ${(error as Error).message}`);
  }
  const schedule: DigestSchedule = {
    hour: config.EMAIL_DIGEST_HOUR,
    weekday: config.EMAIL_DIGEST_WEEKDAY,
    jitterMs: config.EMAIL_DIGEST_JITTER,
  };
  problems.push(...validateSchedule(schedule).map((p) => `EMAIL_DIGEST_*: ${p}`));
  if (problems.length > 0 || !keyRing)
    throw new Error(`the digest side's configuration is invalid:\n  ${problems.join('\n  ')}`);
  return { keyRing, schedule };
}
