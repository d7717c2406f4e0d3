import type { EmailContext } from './config.ts';

export async function startDigestSide(_context: EmailContext): Promise<void> {}
