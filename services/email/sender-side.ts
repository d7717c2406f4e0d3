import type { EmailContext } from './config.ts';

export async function startSenderSide(_context: EmailContext): Promise<void> {}
