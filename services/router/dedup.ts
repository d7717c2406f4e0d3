/**
 * Which events were already fanned out. The wiring seeds a ledger per fetched batch with the ids
 * found in processed_events, routes the batch, produces its records, and only then stores
 * `newlyProcessed()`: an event is marked only once its notifications are durable in Kafka, so a
 * crash in between re-routes it (sinks deduplicate on notification_id) instead of losing it.
 */
export interface DedupLedger {
  isProcessed(eventId: string): boolean;
  /** Marks a fanned-out event; a second copy later in the same batch is then a duplicate too. */
  markProcessed(eventId: string): void;
  /** Ids marked in this batch, to insert into processed_events. */
  newlyProcessed(): string[];
  /** Ids found in processed_events for a later slice of the same batch. */
  addStored(eventIds: Iterable<string>): void;
}

export function createDedupLedger(alreadyProcessed: Iterable<string>): DedupLedger {
  const stored = new Set(alreadyProcessed);
  const marked = new Set<string>();
  return {
    isProcessed: (eventId) => stored.has(eventId) || marked.has(eventId),
    markProcessed: (eventId) => {
      if (!stored.has(eventId)) marked.add(eventId);
    },
    newlyProcessed: () => [...marked],
    addStored: (eventIds) => {
      for (const id of eventIds) stored.add(id);
    },
  };
}
