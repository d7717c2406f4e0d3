/**
 * What a failed nodemailer send means for the message, from nodemailer's error shape: `code`
 * (EAUTH, EENVELOPE, ESOCKET, EDNS, ETLS, ETIMEDOUT, ECONNECTION, …), `originalCode` (the Node
 * system error it wrapped, e.g. ECONNREFUSED, ENOTFOUND), `responseCode` (SMTP reply) and
 * `command` (the SMTP step: CONN, AUTH PLAIN, MAIL FROM, RCPT TO, DATA, API).
 *
 *   transient  retry through the retry topics (server away, busy, 4xx);
 *   recipient  permanent for this address: publish a notify.bounce, do not retry;
 *   rejected   the server refused this message for good, not the address: dead-letter it;
 *   operator   our configuration is wrong: every message would fail the same way, so keep them
 *              and say once what to fix; they go out when the fix lands.
 */

export type OperatorProblem = 'auth' | 'sender-rejected' | 'unknown-host' | 'tls' | 'config';

export type SmtpFailure =
  | { readonly kind: 'transient'; readonly detail: string }
  | {
      readonly kind: 'recipient';
      readonly smtpCode: number | null;
      readonly status: string | null;
      readonly detail: string;
    }
  | {
      readonly kind: 'rejected';
      readonly smtpCode: number | null;
      readonly status: string | null;
      readonly detail: string;
    }
  | {
      readonly kind: 'operator';
      readonly problem: OperatorProblem;
      /** What the operator should change, for the log line and the alert. */
      readonly fix: string;
      readonly detail: string;
    };

interface NodemailerErrorShape {
  readonly code?: unknown;
  readonly originalCode?: unknown;
  readonly responseCode?: unknown;
  readonly command?: unknown;
  readonly response?: unknown;
  readonly message?: unknown;
}

const OPERATOR_FIX: Record<OperatorProblem, string> = {
  auth: 'the SMTP server refused our login: check the SMTP user and password (or the auth method) the sender uses',
  'sender-rejected':
    'the SMTP server refused our envelope sender (MAIL FROM): check the bounce/VERP domain and that the relay accepts mail from it',
  'unknown-host': 'the SMTP host name does not resolve: check the SMTP host setting and DNS',
  tls: 'TLS with the SMTP server failed: check the port and secure/STARTTLS setting, the server certificate and the trusted CA',
  config: 'the SMTP transport configuration is invalid: check the SMTP settings',
};

/** RFC 3463 enhanced status code in a reply, e.g. "550 5.1.1 no such user" → "5.1.1". */
export function enhancedStatus(response: string): string | null {
  return /^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b/.exec(response)?.[1] ?? null;
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function isTlsSystemCode(code: string): boolean {
  return (
    code.startsWith('ERR_TLS_') ||
    code.startsWith('ERR_SSL_') ||
    code.includes('CERT') ||
    code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' ||
    code === 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY'
  );
}

function operator(problem: OperatorProblem, detail: string): SmtpFailure {
  return { kind: 'operator', problem, fix: OPERATOR_FIX[problem], detail };
}

export function classifySmtpError(error: unknown): SmtpFailure {
  const e: NodemailerErrorShape = typeof error === 'object' && error !== null ? error : {};
  const code = text(e.code);
  const original = text(e.originalCode);
  const command = text(e.command);
  const response = text(e.response);
  const smtpCode = typeof e.responseCode === 'number' ? e.responseCode : null;
  const detail = text(e.message) || String(error);
  const status = response ? enhancedStatus(response) : null;

  if (code === 'ECONFIG' || code === 'EREQUIRETLS') return operator('config', detail);
  if (code === 'ETLS' || isTlsSystemCode(original) || isTlsSystemCode(code)) return operator('tls', detail);
  if (code === 'EDNS' || code === 'ENOTFOUND')
    return original === 'EAI_AGAIN' ? { kind: 'transient', detail } : operator('unknown-host', detail);
  if (code === 'EAUTH' || code === 'ENOAUTH' || code === 'EOAUTH2')
    return smtpCode !== null && smtpCode < 500 ? { kind: 'transient', detail } : operator('auth', detail);
  // 4xx anywhere, including 421 "closing channel", is the server asking us to come back later.
  if (smtpCode !== null && smtpCode >= 400 && smtpCode < 500) return { kind: 'transient', detail };

  if (code === 'EENVELOPE') {
    if (command === 'MAIL FROM') return operator('sender-rejected', detail);
    if (command === 'RCPT TO') return { kind: 'recipient', smtpCode, status, detail };
    // Nodemailer refused the envelope itself before talking to the server.
    if (command === 'API')
      return /sender/i.test(detail)
        ? operator('sender-rejected', detail)
        : { kind: 'recipient', smtpCode, status, detail };
  }
  if (smtpCode !== null && smtpCode >= 500 && smtpCode !== 503) {
    // Some servers only judge the recipient after DATA; the enhanced status says whose fault it is.
    if (status?.startsWith('5.1.') || status?.startsWith('5.2.'))
      return { kind: 'recipient', smtpCode, status, detail };
    return { kind: 'rejected', smtpCode, status, detail };
  }
  // Refused or reset connections (ESOCKET with ECONNREFUSED…), ECONNECTION, ETIMEDOUT, 503 bad
  // sequence and anything unknown: retrying is the safe side; the retry topics end in the DLQ.
  return { kind: 'transient', detail };
}

/** Failures of the connection itself: nobody answered, so every message would fail the same way. */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);
const SETUP_TIMEOUTS = new Set(['CONNECT_TIMEOUT', 'GREETING_TIMEOUT', 'UPGRADE_TIMEOUT']);

function systemCode(e: NodemailerErrorShape & { readonly errno?: unknown }): string {
  return text(e.originalCode) || (typeof e.errno === 'string' ? e.errno : '');
}

/**
 * Whether the server could not be reached at all (refused, no route, a connection that never
 * completed its set-up): a reason to hold all sending and probe, not a verdict on the message.
 */
export function serverUnreachable(error: unknown): boolean {
  const e: NodemailerErrorShape & { readonly timeoutType?: unknown } =
    typeof error === 'object' && error !== null ? error : {};
  if (UNREACHABLE_CODES.has(systemCode(e)) && text(e.command) === 'CONN') return true;
  return text(e.code) === 'ETIMEDOUT' && SETUP_TIMEOUTS.has(text(e.timeoutType));
}

/**
 * Whether the server may have accepted the message although the send failed: the session broke
 * (reset, closed, timed out) after it was set up and without a reply saying no. Nodemailer does not
 * tell how far the transaction got, so the sender must treat such a message as possibly delivered.
 * Every other failure is definite: an SMTP reply refused it, or it never reached a server.
 */
export function mayHaveBeenAccepted(error: unknown): boolean {
  const e: NodemailerErrorShape & { readonly timeoutType?: unknown } =
    typeof error === 'object' && error !== null ? error : {};
  if (typeof e.responseCode === 'number') return false;
  if (serverUnreachable(error)) return false;
  const code = text(e.code);
  if (code === 'ESOCKET' && systemCode(e) === 'ECONNREFUSED') return false;
  return code === 'ECONNECTION' || code === 'ESOCKET' || code === 'ETIMEDOUT';
}
