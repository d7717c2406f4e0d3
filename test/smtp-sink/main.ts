/**
 * The development SMTP sink (`make dev`): listens on SMTP_SINK_PORT (default 2525) and stores every
 * message it receives as an .eml file in SMTP_SINK_DIR (default .data/mail), printing one line per
 * message. Open the files with any mail client, or read them as text.
 */
import { resolve } from 'node:path';
import { startSmtpSink } from './sink.ts';

const port = Number(process.env.SMTP_SINK_PORT ?? 2525);
const dir = resolve(process.env.SMTP_SINK_DIR ?? '.data/mail');
const sink = await startSmtpSink({
  port,
  dir,
  onMessage(mail) {
    const subject = mail.parsed?.subject ?? '';
    console.log(`received "${subject}" for ${mail.rcptTo.join(', ')} → ${mail.file}`);
  },
});
console.log(`SMTP sink listening on ${sink.host}:${sink.port}; mail is stored in ${dir}`);

const stop = () => void sink.stop().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
