/**
 * The pooled nodemailer transport behind SMTP_URL. Credentials come from the URL's user info and
 * never appear in what this module reports (`target` is host and port only).
 *
 * Credentials never cross a network in clear: to a relay that is not on loopback, smtp:// with a
 * user requires STARTTLS (nodemailer's requireTLS), so a relay that does not offer it, or a
 * man in the middle stripping it from the EHLO reply, gets no AUTH and shows as a TLS operator
 * error instead of a password in plain text.
 */
import { isIP } from 'node:net';
import nodemailer from 'nodemailer';
import type { DkimKeyRing } from '../../libs/mail/dkim.ts';
import type { OutgoingMail } from './outgoing-mail.ts';

export interface SmtpTransportOptions {
  readonly url: string;
  readonly maxConnections: number;
  readonly timeoutMs: number;
  /** Every message is signed with the ring's signing key (nodemailer's DKIM signer); null: unsigned. */
  readonly dkim: DkimKeyRing | null;
}

export interface SmtpTransport {
  /** Resolves with the server's reply once it accepted the message; rejects with nodemailer's error. */
  send(mail: OutgoingMail): Promise<string>;
  /** Connects and logs in without sending: the probe while a misconfiguration is held. */
  verify(): Promise<void>;
  close(): void;
  /** Where mail goes, safe to log: scheme, host and port. */
  readonly target: string;
}

/** localhost, 127.0.0.0/8 and ::1: the only hosts where a plain-text login stays on the machine. */
export function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

export function createSmtpTransport(options: SmtpTransportOptions): SmtpTransport {
  const url = new URL(options.url);
  const secure = url.protocol === 'smtps:';
  const port = Number(url.port) || (secure ? 465 : 25);
  const user = decodeURIComponent(url.username);
  const transporter = nodemailer.createTransport({
    pool: true,
    maxConnections: options.maxConnections,
    // No cap on messages per connection: reconnecting costs a handshake for nothing.
    maxMessages: Number.POSITIVE_INFINITY,
    host: url.hostname,
    port,
    secure,
    ...(user ? { auth: { user, pass: decodeURIComponent(url.password) } } : {}),
    requireTLS: !secure && user !== '' && !isLoopback(url.hostname),
    connectionTimeout: options.timeoutMs,
    greetingTimeout: options.timeoutMs,
    socketTimeout: options.timeoutMs,
    ...(options.dkim
      ? {
          dkim: {
            domainName: options.dkim.domain,
            keySelector: options.dkim.signing.selector,
            privateKey: options.dkim.signing.privateKey,
          },
        }
      : {}),
  });
  return {
    async send(mail) {
      const info = await transporter.sendMail({
        envelope: { from: mail.envelope.from, to: [...mail.envelope.to] },
        from: mail.from,
        to: mail.to,
        subject: mail.subject,
        text: mail.text,
        html: mail.html,
        messageId: mail.messageId,
        headers: { ...mail.headers },
      });
      return String(info.response ?? '');
    },
    async verify() {
      await transporter.verify();
    },
    close: () => transporter.close(),
    target: `${url.protocol}//${url.hostname}:${port}`,
  };
}
