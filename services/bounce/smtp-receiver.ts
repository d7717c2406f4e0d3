/**
 * The SMTP receiver of the VERP return-path domain.
 *
 * RCPT TO is where forged and stale return paths are refused (550, counted by reason), before a
 * byte of the report is read. An accepted mail is read up to a size limit, parsed and classified;
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
  readonly deadLetterTopic: string;
  readonly dc: string;
  readonly sender: RecordSender;
  readonly metrics: BounceMetrics;
  readonly log: Logger;
  readonly now: () => number;
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

  const server = new SMTPServer({
    name: options.domain,
    banner: 'Tidings bounce receiver',
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    size: options.maxMessageBytes,
    logger: false,
    onRcptTo(address, _session, callback) {
      const verdict = verify(address.address);
      if (verdict.ok) return callback();
      metrics.refused(verdict.reason);
      log.warn({ reason: verdict.reason }, 'refused a bounce to an unverifiable return path');
      callback(smtpError(550, `5.1.1 return path not accepted (${verdict.reason})`));
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
          metrics.message('deferred');
          log.error({ err: error }, 'could not store a bounce report durably; answered 451');
          callback(smtpError(451, '4.3.0 cannot store the report right now, try again later'));
        });
    },
  });

  async function accept(raw: Buffer, tokens: readonly VerpFields[], rcptTo: string): Promise<string> {
    const parsed = await parseReport(raw);
    if (!parsed.ok) {
      await deadLetter(raw, parsed.reason, parsed.detail, rcptTo);
      metrics.message('dead_lettered');
      log.warn({ reason: parsed.reason, detail: parsed.detail }, 'unreadable report dead-lettered');
      return `queued for inspection (${parsed.reason})`;
    }
    const report = classifyReport(parsed.report);
    const { records, unattributed } = attributeFindings(report, tokens, {
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
        'tidings.raw.bytes': String(raw.length),
        'tidings.raw.truncated': String(truncated),
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
