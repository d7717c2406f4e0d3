/**
 * The public HTTP door for provider notifications (the SES-style JSON of webhook.ts), on a port of
 * its own so the ops endpoints never face the internet. POST /webhook with the signature header;
 * 401 for a missing, stale, wrong or already used signature (the reply does not say which), 400 for a body that is not a notification, 503 when
 * the records cannot be made durable (the provider retries), 200 once they are acknowledged.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { type HttpLimits, readBody } from '../../libs/http/server.ts';
import type { BounceMetrics } from './bounce-metrics.ts';
import { bounceRecord } from './bounce-records.ts';
import { type Listening, listenHttp, reply } from './http-listener.ts';
import type { RecordSender } from './record-sender.ts';
import { createReplayCache, parseWebhook, SIGNATURE_HEADER, verifyWebhookSignature } from './webhook.ts';

export const WEBHOOK_PATH = '/webhook';

export interface WebhookServerOptions {
  readonly host: string;
  readonly port: number;
  readonly secrets: readonly string[];
  readonly toleranceMs: number;
  readonly maxBodyBytes: number;
  readonly dc: string;
  readonly sender: RecordSender;
  readonly metrics: BounceMetrics;
  readonly log: Logger;
  readonly now: () => number;
  readonly limits?: HttpLimits;
}

export async function startWebhookServer(options: WebhookServerOptions): Promise<Listening> {
  const { log, metrics } = options;
  const replays = createReplayCache(options.toleranceMs, options.now);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.url !== WEBHOOK_PATH) return reply(res, 404, { error: `POST ${WEBHOOK_PATH}` });
    if (req.method !== 'POST') return reply(res, 405, { error: `POST ${WEBHOOK_PATH}` });
    const body = await readBody(req, res, options.maxBodyBytes);
    if (body === null) return metrics.webhook('too-big');
    const signature = req.headers[SIGNATURE_HEADER];
    const auth = verifyWebhookSignature(
      Array.isArray(signature) ? signature[0] : signature,
      body,
      options.secrets,
      { now: options.now(), toleranceMs: options.toleranceMs },
    );
    const reason = auth.ok ? (replays.claim(auth) ? null : 'replayed') : auth.reason;
    if (reason !== null) {
      metrics.webhook(reason);
      log.warn({ reason }, 'webhook refused');
      return reply(res, 401, { error: 'signature not accepted' });
    }
    const parsed = parseWebhook(body.toString('utf8'));
    if (!parsed.ok) {
      metrics.webhook('invalid');
      return reply(res, 400, { error: parsed.reason });
    }
    const origin = { dc: options.dc, producer: 'bounce', now: options.now() };
    const records = parsed.report.findings.map((f) => bounceRecord(parsed.report, f, null, origin));
    try {
      await options.sender.send(
        records.map((r) => ({ stream: 'notify.bounce', key: r.address_hash, value: r })),
      );
    } catch (error) {
      // Not durable: the provider retries this very request, which must then pass.
      if (auth.ok) replays.release(auth.replayKey);
      throw error;
    }
    metrics.produced(records);
    metrics.webhook('accepted');
    reply(res, 200, { accepted: records.length, ignored: parsed.report.ignored.length });
  }

  return listenHttp(
    options.host,
    options.port,
    handle,
    (error, res) => {
      metrics.webhook('failed');
      log.error({ err: error }, 'webhook could not be stored; answered 503');
      reply(res, 503, { error: 'cannot store the notification right now' });
    },
    options.limits,
  );
}
