/**
 * How long state that deduplicates must be kept (docs/architecture.md, "Retention"). A replay
 * delivers records to their consumers again, and only the dedup ledgers (the router's processed
 * events, push's delivered devices, the email sent ledger and emitted ids, bounce's applied reports)
 * keep people from getting them twice. So `tidings replay` goes back at most REPLAY_LIMIT_MS, the
 * retention of the streams that reach people (notify.event, notify.email, notify.push,
 * notify.email-send: libs/kafka/topic-plan.ts), and every ledger keeps an entry at least
 * DEDUP_RETENTION_MS: a day longer, for a replay planned now and run later, and for clocks that differ.
 */
const DAY_MS = 86_400_000;

export const REPLAY_LIMIT_MS = 7 * DAY_MS;
export const DEDUP_RETENTION_MS = REPLAY_LIMIT_MS + DAY_MS;
