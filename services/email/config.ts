/** The email service's environment: which sides this process runs, and each side's variables. */
import { list } from '../../libs/config/vars.ts';
import type { ServiceConfig, ServiceContext } from '../../libs/service/run-service.ts';
import { digestSpec } from './digest-config.ts';
import { senderSpec } from './sender-config.ts';

export const EMAIL_HTTP_PORT = 9102;

export const EMAIL_SIDES = ['digest', 'sender'] as const;

export const emailSpec = {
  EMAIL_SIDES: list({
    default: [...EMAIL_SIDES],
    help: 'which sides this process runs: digest (notify.email → notify.email-send, unsubscribe endpoint), sender (notify.email-send → SMTP), or both',
  }),
  ...digestSpec,
  ...senderSpec,
};

export type EmailConfig = ServiceConfig<typeof emailSpec>;
export type EmailContext = ServiceContext<EmailConfig>;
