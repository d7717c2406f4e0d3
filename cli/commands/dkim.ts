/**
 * `tidings dkim dns`: the TXT record to publish for each DKIM selector of the sender's key ring
 * (DKIM_DOMAIN and DKIM_KEYS, as the email sender reads them). During a rotation the ring lists the
 * new and the old selector, and both records must stay published.
 */
import type { Command } from 'commander';
import { dkimDnsRecords, parseDkimKeyring } from '../../libs/mail/dkim.ts';
import { contextOf, usageError } from '../context.ts';

interface DnsOptions {
  domain?: string;
  keys?: string;
}

export function dkimCommand(program: Command): void {
  const dkim = program.command('dkim').description('DKIM signing keys of the email sender');
  dkim
    .command('dns')
    .description('print the TXT record to publish for each selector (the signing one first)')
    .option('--domain <domain>', 'the d= domain (default: DKIM_DOMAIN)')
    .option('--keys <selector:path,...>', 'the key ring (default: DKIM_KEYS)')
    .action((options: DnsOptions, command: Command) => {
      const ctx = contextOf(command);
      const domain = options.domain ?? process.env.DKIM_DOMAIN;
      const keys = options.keys ?? process.env.DKIM_KEYS;
      if (!domain || !keys)
        throw usageError('dkim dns needs --domain and --keys (or DKIM_DOMAIN and DKIM_KEYS)');
      let records: ReturnType<typeof dkimDnsRecords>;
      try {
        records = dkimDnsRecords(parseDkimKeyring(keys, domain));
      } catch (error) {
        throw usageError((error as Error).message);
      }
      ctx.print(records, ['selector', 'signing', 'name', 'type', 'value']);
    });
}
