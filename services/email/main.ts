/**
 * email: two sides joined by the notify.email-send queue, run in one process or split over two
 * (EMAIL_SIDES). The digest side turns notify.email into rendered messages: instant, bundled, or in
 * a daily or weekly digest at the person's local hour, and serves one-click unsubscribe. The sender
 * side hands those messages to SMTP at most once each, honouring suppressions and the send rate.
 */
import { join } from 'node:path';
import { verpKeysRule } from '../../libs/mail/verp-config.ts';
import { runService } from '../../libs/service/run-service.ts';
import { EMAIL_HTTP_PORT, EMAIL_SIDES, emailSpec } from './config.ts';
import { startDigestSide } from './digest-side.ts';
import { startSenderSide } from './sender-side.ts';

await runService({
  name: 'email',
  httpPort: EMAIL_HTTP_PORT,
  spec: emailSpec,
  migrations: join(import.meta.dirname, 'migrations'),
  rules: [
    {
      vars: ['EMAIL_SIDES'],
      check: (c) => {
        const unknown = c.EMAIL_SIDES.filter((side) => !(EMAIL_SIDES as readonly string[]).includes(side));
        if (unknown.length > 0)
          return `unknown side ${unknown.join(', ')}; expected ${EMAIL_SIDES.join(', ')}`;
        return c.EMAIL_SIDES.length > 0 ? undefined : 'name at least one side';
      },
    },
    {
      vars: ['VERP_DOMAIN', 'VERP_KEYS'],
      check: (c) =>
        !c.EMAIL_SIDES.includes('sender') || (c.VERP_DOMAIN !== undefined && c.VERP_KEYS !== undefined)
          ? undefined
          : 'the sender side needs both: where bounces arrive, and the key ring shared with the bounce service',
    },
    verpKeysRule,
    {
      vars: ['DKIM_DOMAIN', 'DKIM_KEYS'],
      check: (c) =>
        (c.DKIM_DOMAIN === undefined) === (c.DKIM_KEYS === undefined)
          ? undefined
          : 'set both to sign mail (the d= domain and <selector>:<key file>), or neither',
    },
  ],
  async start(context) {
    if (context.config.EMAIL_SIDES.includes('sender')) await startSenderSide(context);
    if (context.config.EMAIL_SIDES.includes('digest')) await startDigestSide(context);
  },
});
