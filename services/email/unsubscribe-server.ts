/**
 * The public one-click unsubscribe endpoint (RFC 8058), on its own port, with no login: the signed,
 * expiring token in the link is the authorization.
 *   POST <path>?token=…  (body "List-Unsubscribe=One-Click" from a mailbox provider, or our own form)
 *        verifies the token and publishes notify.preference-change (email, enabled false) for every
 *        category the token names (one, or each of a bundle's or digest's) with acks=all before
 *        answering 200; 503 if any fails, so the client retries (a change published twice is the same).
 *   GET  <path>?token=…  shows a confirmation page with a button that POSTs. It changes nothing:
 *        mail scanners and link previews follow every link in a mail.
 * A malformed token is answered 400, a forged or expired one 403, each with a page saying what to do.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Handlebars from 'handlebars';
import type { Logger } from 'pino';
import { createLimitedServer, readBody } from '../../libs/http/server.ts';
import type { NotifyPreferenceChangeInput } from '../../libs/schemas/types.generated.ts';
import type { DigestMetrics, UnsubscribeResult } from './digest-metrics.ts';
import { type UnsubscribeKeyRing, verifyUnsubscribeToken } from './unsubscribe-token.ts';

export interface UnsubscribeServerOptions {
  port: number;
  host?: string;
  /** Public URL of the endpoint as put in mail; only its path is served. */
  publicUrl: string;
  keyRing: UnsubscribeKeyRing;
  siteName: string;
  /** Publishes the change; resolves once Kafka acknowledged it with acks=all. */
  publish(change: Omit<NotifyPreferenceChangeInput, 'meta'> & { dt: number }): Promise<void>;
  metrics: DigestMetrics;
  log: Logger;
  now: () => number;
}

export interface UnsubscribeServer {
  port: number;
  close(): Promise<void>;
}

/** Form bodies are a few hundred bytes; anything larger is not a browser or a mailbox provider. */
const MAX_BODY_BYTES = 16 * 1024;

const page = Handlebars.compile(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="robots" content="noindex"><title>{{title}} — {{site}}</title></head>
<body>
<h1>{{title}}</h1>
<p>{{message}}</p>
{{#if action}}
<form method="post" action="{{action}}">
<input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button>
</form>
{{/if}}
</body>
</html>
`);

const REFUSED: Record<
  'malformed' | 'unknown-key' | 'bad-signature' | 'expired',
  { status: number; message: string }
> = {
  malformed: {
    status: 400,
    message:
      'This unsubscribe link is incomplete. Copy the whole link from the mail, or change your email settings on the site.',
  },
  'unknown-key': {
    status: 403,
    message:
      'This unsubscribe link is not valid any more. Use the link in a recent mail, or change your email settings on the site.',
  },
  'bad-signature': {
    status: 403,
    message:
      'This unsubscribe link is not valid. Use the link exactly as it came in the mail, or change your email settings on the site.',
  },
  expired: {
    status: 403,
    message:
      'This unsubscribe link has expired. Use the link in a recent mail, or change your email settings on the site.',
  },
};

function describe(categories: readonly string[] | null, site: string): string {
  if (categories === null) return `all email from ${site}`;
  const names = categories.map((c) => `“${c}”`);
  const last = names.pop();
  return `${names.length > 0 ? `${names.join(', ')} and ${last}` : last} email from ${site}`;
}

export async function startUnsubscribeServer(options: UnsubscribeServerOptions): Promise<UnsubscribeServer> {
  const { keyRing, siteName, metrics, log, now } = options;
  const path = new URL(options.publicUrl).pathname;

  function answer(
    res: ServerResponse,
    method: string,
    result: UnsubscribeResult,
    status: number,
    view: { title: string; message: string; action?: string },
  ) {
    metrics.unsubscribe(method, result);
    const body = page({ ...view, site: siteName });
    res.writeHead(status, {
      'content-type': 'text/html; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
      'referrer-policy': 'no-referrer',
    });
    res.end(body);
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://unsubscribe.invalid');
    const method = req.method ?? 'GET';
    if (url.pathname !== path || (method !== 'GET' && method !== 'POST')) {
      res.writeHead(url.pathname === path ? 405 : 404, { allow: 'GET, POST' }).end();
      return;
    }
    let token = url.searchParams.get('token');
    if (method === 'POST') {
      const body = await readBody(req, res, MAX_BODY_BYTES);
      if (body === null) return;
      token ??= new URLSearchParams(body.toString('utf8')).get('token');
    }
    const verified = verifyUnsubscribeToken(keyRing, token ?? '', now());
    if (!verified.ok) {
      const refused = REFUSED[verified.reason];
      answer(res, method, verified.reason, refused.status, {
        title: 'Link not valid',
        message: refused.message,
      });
      return;
    }
    const { claims } = verified;
    const what = describe(claims.categories, siteName);
    if (method === 'GET') {
      const action = new URL(url.pathname, 'http://unsubscribe.invalid');
      action.searchParams.set('token', token ?? '');
      answer(res, method, 'confirm-page', 200, {
        title: 'Unsubscribe?',
        message: `Stop ${what}?`,
        action: `${action.pathname}${action.search}`,
      });
      return;
    }
    try {
      const dt = now();
      await Promise.all(
        (claims.categories ?? [null]).map((category) =>
          options.publish({
            dt,
            user_id: claims.userId,
            category,
            channel: 'email',
            enabled: false,
            email_frequency: null,
            reason: 'one-click-unsubscribe',
          }),
        ),
      );
    } catch (err) {
      log.error(
        { err, user_id: claims.userId },
        'publishing an unsubscribe failed; the client was asked to retry',
      );
      answer(res, method, 'publish-failed', 503, {
        title: 'Please try again',
        message: 'We could not record your request just now. Please try again in a few minutes.',
      });
      return;
    }
    log.info({ user_id: claims.userId, categories: claims.categories }, 'one-click unsubscribe');
    answer(res, method, 'unsubscribed', 200, {
      title: 'Unsubscribed',
      message: `You will get no more ${what}.`,
    });
  }

  const server = createLimitedServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log.error({ err }, 'unsubscribe request failed');
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
