/**
 * A real SMTP server (smtp-server) that keeps what it receives: tests assert on the envelope, the
 * raw message and its parsed headers; `make dev` stores every message as an .eml file to open in a
 * mail client. It can demand credentials, refuse chosen recipients with a 5xx, and stop and start
 * again on the same port to play an outage.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';

export interface ReceivedMail {
  /** Envelope sender (MAIL FROM): the VERP return path. */
  readonly mailFrom: string;
  readonly rcptTo: readonly string[];
  readonly raw: Buffer;
  /** null when the sink was started with parse: false. */
  readonly parsed: ParsedMail | null;
  /** Where the .eml was written, when the sink has a directory. */
  readonly file: string | null;
}

export interface SmtpSinkOptions {
  readonly host?: string;
  /** 0 (default): any free port. */
  readonly port?: number;
  /** Write each message to <dir>/<time>-<n>.eml, with Return-Path and Delivered-To in front. */
  readonly dir?: string;
  /** Parse messages with mailparser (default true); benchmarks turn it off to measure the sender. */
  readonly parse?: boolean;
  /** Only these credentials log in; null (default) accepts anyone, with or without AUTH. */
  readonly credentials?: { readonly user: string; readonly pass: string } | null;
  /** A reply code and text refusing this recipient, e.g. [550, '5.1.1 no such user']. */
  readonly refuseRecipient?: (address: string) => readonly [number, string] | undefined;
  readonly onMessage?: (mail: ReceivedMail) => void;
}

export interface SmtpSink {
  readonly host: string;
  readonly port: number;
  /** Everything received since start, in order of arrival. */
  readonly received: ReceivedMail[];
  setCredentials(credentials: { readonly user: string; readonly pass: string } | null): void;
  /** Stops listening and drops open connections, as a crashed server would. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
}

const reply = (code: number, text: string) => Object.assign(new Error(text), { responseCode: code });

export async function startSmtpSink(options: SmtpSinkOptions = {}): Promise<SmtpSink> {
  const host = options.host ?? '127.0.0.1';
  const parse = options.parse ?? true;
  let credentials = options.credentials ?? null;
  let sequence = 0;
  const received: ReceivedMail[] = [];
  if (options.dir) await mkdir(options.dir, { recursive: true });

  const serverOptions: SMTPServerOptions = {
    logger: false,
    authOptional: true,
    allowInsecureAuth: true,
    // No certificate worth trusting here: clients would fail STARTTLS rather than skip it.
    disabledCommands: ['STARTTLS'],
    closeTimeout: 50,
    size: 25 * 1024 * 1024,
    onAuth(auth, _session, callback) {
      if (!credentials || (auth.username === credentials.user && auth.password === credentials.pass))
        return callback(null, { user: auth.username ?? 'anonymous' });
      callback(reply(535, '5.7.8 Authentication credentials invalid'));
    },
    onMailFrom(_address, session, callback) {
      callback(credentials && !session.user ? reply(530, '5.7.0 Authentication required') : undefined);
    },
    onRcptTo(address, _session, callback) {
      const refusal = options.refuseRecipient?.(address.address);
      callback(refusal ? reply(refusal[0], refusal[1]) : undefined);
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks);
        const n = ++sequence;
        void (async () => {
          const mailFrom = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
          const rcptTo = session.envelope.rcptTo.map((r) => r.address);
          const file = options.dir ? join(options.dir, `${Date.now()}-${n}.eml`) : null;
          // As a delivering MTA would, the file records the envelope in front of the message.
          const envelope = `Return-Path: <${mailFrom}>\r\n${rcptTo.map((to) => `Delivered-To: ${to}\r\n`).join('')}`;
          if (file) await writeFile(file, Buffer.concat([Buffer.from(envelope), raw]));
          const mail: ReceivedMail = {
            mailFrom,
            rcptTo,
            raw,
            parsed: parse ? await simpleParser(raw) : null,
            file,
          };
          received.push(mail);
          options.onMessage?.(mail);
        })().then(
          () => callback(null, `2.0.0 queued as ${n}`),
          (error: unknown) => callback(reply(451, `4.3.0 sink failed to store the message: ${error}`)),
        );
      });
    },
  };

  let server: SMTPServer | null = null;
  let port = options.port ?? 0;
  async function listen() {
    const next = new SMTPServer(serverOptions);
    next.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      next.server.once('error', reject);
      next.listen(port, host, () => resolve());
    });
    port = (next.server.address() as AddressInfo).port;
    server = next;
  }
  await listen();

  return {
    host,
    get port() {
      return port;
    },
    received,
    setCredentials(next) {
      credentials = next;
    },
    async stop() {
      const current = server;
      server = null;
      if (current) await new Promise<void>((resolve) => current.close(() => resolve()));
    },
    start: listen,
  };
}

/** The header fields as they arrived, unfolded: [lower-case name, value]. */
export function rawHeaders(mail: ReceivedMail): [string, string][] {
  const block = String(mail.raw).split(/\r?\n\r?\n/)[0] ?? '';
  return block
    .replace(/\r?\n(?=[ \t])/g, '')
    .split(/\r?\n/)
    .map((line) => [
      line.slice(0, line.indexOf(':')).toLowerCase(),
      line.slice(line.indexOf(':') + 1).trim(),
    ]);
}

/** Every value of one header field, as sent (mailparser folds some, like List-*, into objects). */
export const headerValues = (mail: ReceivedMail, name: string): string[] =>
  rawHeaders(mail)
    .filter(([n]) => n === name)
    .map(([, v]) => v);
