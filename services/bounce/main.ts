/**
 * bounce: learns which addresses must not be mailed and tells the sender through the compacted
 * notify.suppression stream.
 *
 * Reports come in by SMTP at the VERP domain (smtp-receiver.ts: DSNs and ARF complaints, signed
 * return paths verified at RCPT TO) and by a provider webhook (webhook-server.ts: SES-style JSON,
 * HMAC-signed); both only write notify.bounce. The consumer of notify.bounce (every DC prefix,
 * which also carries the sender's own 5xx records) keeps per-address state (suppression-ledger.ts
 * applying suppression-policy.ts) and publishes suppressions, their tombstones and, for complaints,
 * the person's email preference turned off (the person the report names, or the people notify.user
 * says have the address: people-store.ts). A sweep releases soft-bounce suppressions after their
 * cool-down; operators list and lift suppressions on an authenticated port (suppression-admin.ts).
 */
import { join } from 'node:path';
import { DEDUP_RETENTION_MS } from '../../libs/config/retention.ts';
import { duration, int, list, port, str } from '../../libs/config/vars.ts';
import { tombstoneTime } from '../../libs/convergence/version.ts';
import { httpLimitsOf, httpLimitsSpec } from '../../libs/http/server.ts';
import { createProducer } from '../../libs/kafka/client.ts';
import { rawSmtpDeadLetterTopic } from '../../libs/kafka/topic-plan.ts';
import { verpKeysRule, verpSettingsOf, verpSpec } from '../../libs/mail/verp-config.ts';
import { runService } from '../../libs/service/run-service.ts';
import { createTrail } from '../../libs/trail/trail.ts';
import { pruneApplied } from './address-store.ts';
import { createBounceMetrics } from './bounce-metrics.ts';
import { bounceDecisions } from './bounce-trail.ts';
import { erasePerson, peopleAt, rememberPerson } from './people-store.ts';
import { createRecordSender } from './record-sender.ts';
import { startReleaseSweep } from './release-sweep.ts';
import { createReputation } from './reputation.ts';
import { notificationsSentAs, pruneSent, rememberSent } from './sent-mail.ts';
import { startSmtpReceiver } from './smtp-receiver.ts';
import { startSuppressionAdmin } from './suppression-admin.ts';
import { type LedgerDeps, liftAddress, recordBounce, releaseDue } from './suppression-ledger.ts';
import { MIN_WEBHOOK_SECRET_CHARS } from './webhook.ts';
import { startWebhookServer } from './webhook-server.ts';

export const BOUNCE_HTTP_PORT = 9106;

const HOUR = 3_600_000;
const FRACTION = /^(0(\.\d+)?|1(\.0+)?)$/;

const spec = {
  ...verpSpec,
  VERP_MAX_AGE: duration({
    default: 14 * 24 * HOUR,
    min: HOUR,
    help: 'bounces to return paths older than this are refused (MTAs give up on mail within days)',
  }),
  BOUNCE_SMTP_HOST: str({ default: '127.0.0.1', help: 'address the SMTP receiver listens on' }),
  BOUNCE_SMTP_PORT: port({
    default: 2526,
    help: 'SMTP port of the receiver (25 behind the MX in production)',
  }),
  BOUNCE_SMTP_MAX_BYTES: int({
    default: 4 * 1024 * 1024,
    min: 1024,
    help: 'largest report accepted (a DSN may carry the whole original message); larger ones get 552',
  }),
  BOUNCE_SMTP_MAX_CLIENTS: int({
    default: 100,
    min: 1,
    help: 'SMTP connections at once; more are answered 421 (MTAs retry)',
  }),
  BOUNCE_SMTP_MAX_RCPT: int({
    default: 10,
    min: 1,
    help: 'RCPT TO per message; more are answered 452 (a bounce goes to one return path)',
  }),
  BOUNCE_SMTP_MAX_REFUSALS: int({
    default: 5,
    min: 1,
    help: 'refused RCPT TO per SMTP session; at this many the session is closed with 421',
  }),
  BOUNCE_SMTP_TIMEOUT: duration({
    default: 60_000,
    min: 1_000,
    help: 'an SMTP connection idle (or trickling) this long is closed',
  }),
  BOUNCE_MAX_REPORT_RECIPIENTS: int({
    default: 100,
    min: 1,
    help: 'recipients one report may name; a report naming more is dead-lettered as too-many-recipients',
  }),
  BOUNCE_DLQ_PER_MINUTE: int({
    default: 10,
    min: 1,
    help: 'unreadable reports dead-lettered per minute; beyond, they are answered 451 (a real MTA retries later)',
  }),
  BOUNCE_DLQ_MAX_BYTES: int({
    default: 64 * 1024,
    min: 1024,
    max: 900 * 1024,
    help: 'raw bytes of an unreadable report kept in its dead letter (under the broker message size)',
  }),
  BOUNCE_WEBHOOK_HOST: str({
    default: '127.0.0.1',
    help: 'address of the public webhook port (0.0.0.0 to expose it)',
  }),
  BOUNCE_WEBHOOK_PORT: port({ default: 9107, help: 'port of the provider webhook (POST /webhook)' }),
  BOUNCE_WEBHOOK_SECRETS: list({
    optional: true,
    secret: true,
    help: `HMAC secrets webhook signatures are checked against (several while rotating), each at least ${MIN_WEBHOOK_SECRET_CHARS} characters; unset disables the webhook`,
  }),
  BOUNCE_WEBHOOK_TOLERANCE: duration({
    default: 300_000,
    min: 1_000,
    help: 'how far a signed webhook timestamp may be from now (bounds replays)',
  }),
  BOUNCE_WEBHOOK_MAX_BYTES: int({ default: 256 * 1024, min: 1024, help: 'largest webhook body accepted' }),
  BOUNCE_ADMIN_HOST: str({ default: '127.0.0.1', help: 'address of the operator port' }),
  BOUNCE_ADMIN_PORT: port({
    default: 9108,
    help: 'operator port: GET /suppressions, DELETE /suppressions/<address>',
  }),
  BOUNCE_ADMIN_TOKEN: str({
    optional: true,
    secret: true,
    pattern: /^\S{32,}$/,
    expect: 'at least 32 characters without spaces',
    help: 'bearer token of the operator port; unset disables it',
  }),
  BOUNCE_SOFT_THRESHOLD: int({ default: 3, min: 1, help: 'soft bounces within the window that suppress' }),
  BOUNCE_SOFT_WINDOW: duration({
    default: 72 * HOUR,
    min: 1_000,
    help: 'window soft bounces are counted in',
  }),
  BOUNCE_SOFT_COOLDOWN: duration({
    default: 24 * HOUR,
    min: 1_000,
    help: 'how long a soft-bounce suppression lasts before it is released',
  }),
  BOUNCE_RELEASE_INTERVAL: duration({ default: 60_000, min: 100, help: 'how often due releases are swept' }),
  ...httpLimitsSpec,
  REPUTATION_WINDOW: duration({ default: 24 * HOUR, min: 60_000, help: 'window of the per-domain rates' }),
  REPUTATION_DOMAINS: list({
    optional: true,
    help: 'our sending domains (the From domains the sender uses); reports naming any other domain count as "other", since an SMTP report\'s From is text its writer chose',
  }),
  REPUTATION_EXPECTED_SENDS: int({
    default: 10_000,
    min: 1,
    help: 'mails a sending domain is expected to send per REPUTATION_WINDOW: the denominator of the rates',
  }),
  REPUTATION_BOUNCE_ALERT: str({
    default: '0.05',
    pattern: FRACTION,
    expect: 'a fraction 0-1, e.g. 0.05',
    help: 'hard-bounce rate that logs a reputation alert (SES reviews at 5%)',
  }),
  REPUTATION_COMPLAINT_ALERT: str({
    default: '0.001',
    pattern: FRACTION,
    expect: 'a fraction 0-1, e.g. 0.001',
    help: 'complaint rate that logs a reputation alert (SES reviews at 0.1%)',
  }),
};

await runService({
  name: 'bounce',
  httpPort: BOUNCE_HTTP_PORT,
  spec,
  migrations: join(import.meta.dirname, 'migrations'),
  rules: [
    {
      vars: ['BOUNCE_WEBHOOK_SECRETS'],
      check: (c) => {
        // Positions only: an error message must not echo any part of a secret.
        const short = (c.BOUNCE_WEBHOOK_SECRETS ?? []).flatMap((secret, i) =>
          secret.length < MIN_WEBHOOK_SECRET_CHARS ? [i + 1] : [],
        );
        return short.length === 0
          ? undefined
          : `secret ${short.join(', ')} is shorter than ${MIN_WEBHOOK_SECRET_CHARS} characters (a short secret can be guessed offline from one signed request)`;
      },
    },
    verpKeysRule,
  ],
  async start({ config, consume, kafka, serde, log, registry, onShutdown, addReadiness, db: pool }) {
    if (!pool) throw new Error('bounce runs with its own database schema');
    // Ready once the SMTP receiver and the HTTP ports listen, not only once the consumer runs.
    let listening = false;
    addReadiness('receivers', () => ({ ok: listening, detail: listening ? 'listening' : 'starting' }));
    const db = pool;
    const now = Date.now;
    const metrics = createBounceMetrics(registry);

    const producer = createProducer(kafka);
    await producer.connect();
    onShutdown('producer', () => producer.disconnect());
    const sender = createRecordSender(producer, serde, config.TIDINGS_DC);

    const ledger: LedgerDeps = {
      db,
      sender,
      dc: config.TIDINGS_DC,
      policy: {
        softThreshold: config.BOUNCE_SOFT_THRESHOLD,
        softWindowMs: config.BOUNCE_SOFT_WINDOW,
        softCooldownMs: config.BOUNCE_SOFT_COOLDOWN,
      },
      log,
      peopleAt: (hash) => peopleAt(db, hash),
      observe: metrics.action,
    };
    const reputation = createReputation({
      windowMs: config.REPUTATION_WINDOW,
      expectedSends: config.REPUTATION_EXPECTED_SENDS,
      bounceAlert: Number(config.REPUTATION_BOUNCE_ALERT),
      complaintAlert: Number(config.REPUTATION_COMPLAINT_ALERT),
      maxDomains: 100,
      ...(config.REPUTATION_DOMAINS ? { domains: config.REPUTATION_DOMAINS } : {}),
      registry,
      log,
      now,
    });

    await consume({
      stream: 'notify.user',
      handler: {
        handle: (record) => rememberPerson(db, record.value),
        async handleTombstone(record) {
          if (record.key) await erasePerson(db, record.key, tombstoneTime(record));
        },
      },
    });

    // Erasures that outlive notify.user's compacted tombstones (written by the router).
    await consume({
      stream: 'notify.erasure',
      handler: {
        async handle({ value }) {
          if (value.stream === 'notify.user') await erasePerson(db, value.key, value.meta.dt);
        },
      },
    });

    // The sender's trail says which notifications each message carried (sent-mail.ts).
    const trail = createTrail({ stage: 'bounce', enabled: config.DELIVERY_TRAIL });
    if (trail.enabled) {
      await consume({
        stream: 'notify.status',
        handler: {
          handle() {},
          afterDurable: (records) =>
            rememberSent(
              db,
              records.map((r) => r.value),
            ),
        },
      });
    }

    await consume({
      stream: 'notify.bounce',
      producer,
      handler: {
        async handle(record, context) {
          const actions = await recordBounce(ledger, record.value);
          if (actions !== null) reputation.observe(record.value.sending_domain, record.value.kind);
          // A redelivered report (null) suppressed nothing new: its bounce is told again, the same decision.
          if (!trail.enabled || record.value.send_id === null) return;
          const sent = await notificationsSentAs(db, record.value.send_id);
          for (const decision of bounceDecisions(record.value, actions ?? [], sent))
            trail.write(context, decision);
        },
      },
    });

    const sweep = startReleaseSweep({
      intervalMs: config.BOUNCE_RELEASE_INTERVAL,
      run: () => releaseDue(ledger, now()),
      log,
    });
    onShutdown('release sweep', () => sweep.stop());
    const prune = setInterval(() => {
      // As long as a replay may reach back (libs/config/retention.ts), or it counts soft bounces twice.
      pruneApplied(db, now() - DEDUP_RETENTION_MS).catch((err) =>
        log.warn({ err }, 'pruning applied bounce ids failed; will retry'),
      );
      pruneSent(db, now() - config.VERP_MAX_AGE).catch((err) =>
        log.warn({ err }, 'pruning sent messages failed; will retry'),
      );
    }, HOUR);
    prune.unref();
    onShutdown('prune timer', () => clearInterval(prune));

    // Declared in the topic plan; runService checked that it exists.
    const deadLetterTopic = rawSmtpDeadLetterTopic(config.TIDINGS_DC);

    const verp = verpSettingsOf(config);
    const smtp = await startSmtpReceiver({
      host: config.BOUNCE_SMTP_HOST,
      port: config.BOUNCE_SMTP_PORT,
      domain: verp.domain,
      keys: verp.keyring.keys,
      maxTokenAgeMs: config.VERP_MAX_AGE,
      maxMessageBytes: config.BOUNCE_SMTP_MAX_BYTES,
      maxDeadLetterBytes: config.BOUNCE_DLQ_MAX_BYTES,
      limits: {
        maxClients: config.BOUNCE_SMTP_MAX_CLIENTS,
        maxRecipients: config.BOUNCE_SMTP_MAX_RCPT,
        maxRefusals: config.BOUNCE_SMTP_MAX_REFUSALS,
        maxReportRecipients: config.BOUNCE_MAX_REPORT_RECIPIENTS,
        maxDeadLettersPerMinute: config.BOUNCE_DLQ_PER_MINUTE,
        socketTimeoutMs: config.BOUNCE_SMTP_TIMEOUT,
      },
      deadLetterTopic,
      dc: config.TIDINGS_DC,
      sender,
      metrics,
      log,
      now,
    });
    onShutdown('smtp receiver', () => smtp.close());
    log.info({ port: smtp.port, domain: verp.domain, dlq: deadLetterTopic }, 'SMTP receiver listening');

    if (config.BOUNCE_WEBHOOK_SECRETS) {
      const webhook = await startWebhookServer({
        host: config.BOUNCE_WEBHOOK_HOST,
        port: config.BOUNCE_WEBHOOK_PORT,
        secrets: config.BOUNCE_WEBHOOK_SECRETS,
        toleranceMs: config.BOUNCE_WEBHOOK_TOLERANCE,
        maxBodyBytes: config.BOUNCE_WEBHOOK_MAX_BYTES,
        dc: config.TIDINGS_DC,
        sender,
        metrics,
        log,
        now,
        limits: httpLimitsOf(config),
      });
      onShutdown('webhook server', () => webhook.close());
      log.info({ port: webhook.port }, 'webhook listening: POST /webhook');
    } else {
      log.warn('BOUNCE_WEBHOOK_SECRETS unset: the provider webhook is off');
    }

    if (config.BOUNCE_ADMIN_TOKEN) {
      const adminPort = await startSuppressionAdmin({
        host: config.BOUNCE_ADMIN_HOST,
        port: config.BOUNCE_ADMIN_PORT,
        token: config.BOUNCE_ADMIN_TOKEN,
        db,
        lift: (hash) => liftAddress(ledger, hash, now()),
        log,
        limits: httpLimitsOf(config),
      });
      onShutdown('suppression admin', () => adminPort.close());
      log.info({ port: adminPort.port }, 'operator port listening: /suppressions');
    } else {
      log.warn('BOUNCE_ADMIN_TOKEN unset: the operator port is off');
    }
    listening = true;
  },
});
