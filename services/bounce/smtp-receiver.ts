/**
 * The SMTP receiver of the VERP return-path domain.
 *
 * RCPT TO is where forged and stale return paths are refused (550, counted by reason), before a
 * byte of the report is read; a token of a key id we do not know gets 451, since it may be a key
 * rotated in on the sender first, and the MTA will retry once we know it. Replies never say why a
 * return path was refused: the reason is counted and logged, not told to whoever is probing.
 *
 * Everything from outside is bounded: clients at once (BOUNCE_SMTP_MAX_CLIENTS, 421 beyond), RCPT
 * TO per message (452 beyond), refused RCPT TO per session (the session is closed with 421 at the
 * limit), the size of a mail (552), recipients a report may name (parse limit), and dead letters
 * per minute (451 beyond: a flood of junk cannot fill the DLQ, a real MTA retries later). An
 * accepted mail is read up to a size limit, parsed and classified;
 * its notify.bounce records are acknowledged by Kafka (acks=all) before the 250 reply, so a DSN the
 * reporting MTA saw accepted is never lost. If Kafka cannot take them the answer is 451: the MTA
 * keeps the report and tries again later.
 *
 * A mail that cannot be read as a report is dead-lettered with the raw bytes (bounded) and the
 * reason, and answered 250: it is kept, so refusing it would only make the reporting MTA send a
 * double bounce to its postmaster and retry nothing useful. Its topic is the receiver's own
 * `<dc>.notify.bounce.bounce-smtp.dlq` rather than the consumer's `…bounce.dlq`: those records are
 * raw mail, not notify.bounce records, and `tidings dlq replay` must not feed them to the stream.
 */
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { SMTPServer, type SMTPServerDataStream } from 'smtp-server';
import { HEADER } from '../../libs/kafka/record-headers.ts';
import { type VerpFields, type VerpKey, verifyReturnPath } from '../../libs/mail/verp.ts';
import type { BounceMetrics } from './bounce-metrics.ts';
import { attributeFindings } from './bounce-records.ts';
import { classifyReport } from './classify.ts';
import type { RecordSender } from './record-sender.ts';
import { parseReport } from './report-parser.ts';

export interface SmtpReceiverOptions {
  readonly host: string;
  readonly port: number;
  /** The VERP domain: RCPT TO at any other domain is refused. */
  readonly domain: string;
  readonly keys: readonly VerpKey[];
  readonly maxTokenAgeMs: number;
  /** Larger mails are refused with 552. */
  readonly maxMessageBytes: number;
  /** Raw bytes kept in a dead letter; the rest is cut off (and the cut said in a header). */
  readonly maxDeadLetterBytes: number;
  readonly limits: SmtpLimits;
  readonly deadLetterTopic: string;
  readonly dc: string;
  readonly sender: RecordSender;
  readonly metrics: BounceMetrics;
  readonly log: Logger;
  readonly now: () => number;
}

export interface SmtpLimits {
  /** Connections at once; more are answered 421. */
  readonly maxClients: number;
  /** RCPT TO per message; more are answered 452. */
  readonly maxRecipients: number;
  /** Refused RCPT TO per session; the one reaching it is answered 421 and the session closed. */
  readonly maxRefusals: number;
  /** Recipients a report may name; a report naming more is dead-lettered (too-many-recipients). */
  readonly maxReportRecipients: number;
  /** Dead letters written per minute; beyond, unreadable mail is answered 451. */
  readonly maxDeadLettersPerMinute: number;
  /** An idle or trickling connection is closed after this long. */
  readonly socketTimeoutMs: number;
}

export interface SmtpReceiver {
  readonly port: number;
  close(): Promise<void>;
}

const smtpError = (responseCode: number, message: string): Error =>
  Object.assign(new Error(message), { responseCode });

export async function startSmtpReceiver(options: SmtpReceiverOptions): Promise<SmtpReceiver> {
  const { log, metrics } = options;
  const verify = (address: string) =>
    verifyReturnPath(address, options.keys, {
      now: options.now(),
      maxAgeMs: options.maxTokenAgeMs,
      domain: options.domain,
    });

  const { limits } = options;
  const refusals = new Map<string, number>();
  const deadLetters = createMinuteWindow(limits.maxDeadLettersPerMinute, options.now);

  const server = new SMTPServer({
    name: options.domain,
    banner: 'Tidings bounce receiver',
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    size: options.maxMessageBytes,
    maxClients: limits.maxClients,
    maxRecipients: limits.maxRecipients,
    socketTimeout: limits.socketTimeoutMs,
    logger: false,
    onRcptTo(address, session, callback) {
      const verdict = verify(address.address);
      if (verdict.ok) return callback();
      metrics.refused(verdict.reason);
      const refused = (refusals.get(session.id) ?? 0) + 1;
      refusals.set(session.id, refused);
      if (refused >= limits.maxRefusals) {
        metrics.refused('session-limit');
        log.warn({ refused }, 'closed an SMTP session that kept naming unverifiable return paths');
        return callback(smtpError(421, '4.7.0 too many rejected recipients, closing'));
      }
      if (refused === 1)
        log.warn({ reason: verdict.reason }, 'refused a bounce to an unverifiable return path');
      if (verdict.reason === 'unknown-key') return callback(smtpError(451, '4.3.0 try again later'));
      callback(smtpError(550, '5.1.1 no such recipient'));
    },
    onClose(session) {
      refusals.delete(session.id);
    },
    onData(stream, session, callback) {
      // Tokens were verified at RCPT TO; verifying again here gives their fields without per-session state.
      const tokens = session.envelope.rcptTo.flatMap((r) => {
        const verdict = verify(r.address);
        return verdict.ok ? [verdict.fields] : [];
      });
      readBounded(stream, options.maxMessageBytes)
        .then(async (raw) => {
          if (raw === null) {
            metrics.message('too_big');
            return callback(smtpError(552, `5.3.4 message larger than ${options.maxMessageBytes} bytes`));
          }
          const reply = await accept(raw, tokens, session.envelope.rcptTo.map((r) => r.address).join(','));
          callback(null, reply);
        })
        .catch((error: unknown) => {
          if ((error as { responseCode?: number }).responseCode) return callback(error as Error);
          metrics.message('deferred');
          log.error({ err: error }, 'could not store a bounce report durably; answered 451');
          callback(smtpError(451, '4.3.0 cannot store the report right now, try again later'));
        });
    },
  });

  async function accept(raw: Buffer, tokens: readonly VerpFields[], rcptTo: string): Promise<string> {
    const parsed = await parseReport(raw, { maxRecipients: limits.maxReportRecipients });
    if (!parsed.ok) {
      if (!deadLetters.take()) {
        metrics.message('deferred');
        log.warn(
          { reason: parsed.reason },
          'dead letters over their rate limit; unreadable report answered 451',
        );
        throw smtpError(451, '4.7.1 try again later');
      }
      await deadLetter(raw, parsed.reason, parsed.detail, rcptTo);
      metrics.message('dead_lettered');
      log.warn({ reason: parsed.reason, detail: parsed.detail }, 'unreadable report dead-lettered');
      return `queued for inspection (${parsed.reason})`;
    }
    const report = classifyReport(parsed.report);
    const { records, unattributed } = attributeFindings(report, tokens, options.keys, {
      dc: options.dc,
      producer: 'bounce',
      now: options.now(),
    });
    if (unattributed.length > 0) {
      metrics.unattributed(unattributed.length);
      log.warn(
        { addresses: unattributed.length },
        'report names addresses its return path was not issued for; ignored',
      );
    }
    if (records.length === 0) {
      metrics.message('ignored');
      return 'nothing to act on';
    }
    await options.sender.send(
      records.map((r) => ({ stream: 'notify.bounce', key: r.address_hash, value: r })),
    );
    metrics.produced(records);
    metrics.message('produced');
    return `${records.length} report(s) recorded`;
  }

  async function deadLetter(raw: Buffer, reason: string, detail: string, rcptTo: string): Promise<void> {
    const truncated = raw.length > options.maxDeadLetterBytes;
    await options.sender.sendRaw({
      topic: options.deadLetterTopic,
      key: null,
      value: truncated ? raw.subarray(0, options.maxDeadLetterBytes) : raw,
      headers: {
        [HEADER.errorKind]: reason,
        [HEADER.errorMessage]: detail.slice(0, 1000),
        [HEADER.failedAt]: String(options.now()),
        [HEADER.service]: 'bounce',
        'tidings.smtp.rcpt-to': rcptTo,
        [HEADER.rawBytes]: String(raw.length),
        [HEADER.rawTruncated]: String(truncated),
      },
    });
  }

  server.on('error', (error) => log.error({ err: error }, 'SMTP receiver error'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** At most `max` takes in any minute (a fixed window: simple, and bursts of 2×max are harmless). */
function createMinuteWindow(max: number, now: () => number): { take(): boolean } {
  let windowStart = 0;
  let taken = 0;
  return {
    take() {
      const t = now();
      if (t - windowStart >= 60_000) {
        windowStart = t;
        taken = 0;
      }
      if (taken >= max) return false;
      taken += 1;
      return true;
    },
  };
}

/** The whole message, or null once it passes `max` bytes (the rest is drained, not kept). */
async function readBounded(stream: SMTPServerDataStream, max: number): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= max) chunks.push(chunk);
  }
  return size > max || stream.sizeExceeded ? null : Buffer.concat(chunks);
}
