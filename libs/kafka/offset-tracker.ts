/**
 * Tracks the records of one partition that are in flight and answers which offset may be
 * committed: the lowest unfinished one. Records finish out of order under concurrency; committing
 * past an unfinished record would lose it on a crash, so a slow record holds the commit back
 * (and is what gets redelivered), never the fast ones after it.
 */
export interface Committable<D> {
  /** The offset to commit: the next one to read. */
  offset: bigint;
  /** The data given with the highest finished record below it. */
  data: D;
}

/** A record begun and not yet finished; `begin` hands it out and `finish` takes it back. */
export interface Position<D> {
  /** As KafkaJS gives it: parsed only for the offset that commits, not once per record. */
  readonly offset: string;
  readonly data: D;
  done: boolean;
}

export interface OffsetTracker<D> {
  begin(offset: string, data: D): Position<D>;
  finish(position: Position<D>): void;
  /** Drops finished records from the head and returns what may be committed, if anything moved. */
  advance(): Committable<D> | null;
  inFlight(): number;
}

export function createOffsetTracker<D>(): OffsetTracker<D> {
  // Offsets begin in increasing order (they come from one partition's log), so a queue keeps the
  // lowest unfinished record at its head and advancing is amortised O(1). A record is finished
  // through the position it began with: no look-up by offset, once per record.
  const queue: Position<D>[] = [];
  let head = 0;

  return {
    begin(offset, data) {
      const last = queue[queue.length - 1];
      if (last && !isAfter(offset, last.offset)) {
        throw new Error(`offset ${offset} began after ${last.offset}: offsets must increase`);
      }
      const position = { offset, data, done: false };
      queue.push(position);
      return position;
    },
    finish(position) {
      position.done = true;
    },
    advance() {
      let last: Position<D> | undefined;
      while (head < queue.length && queue[head]!.done) {
        last = queue[head]!;
        head++;
      }
      if (head > 1024 && head * 2 > queue.length) {
        queue.splice(0, head);
        head = 0;
      }
      return last ? { offset: BigInt(last.offset) + 1n, data: last.data } : null;
    },
    inFlight() {
      return queue.length - head;
    },
  };
}

/** Whether one offset (decimal digits, no leading zeros, as Kafka gives them) is above another. */
const isAfter = (offset: string, than: string): boolean =>
  offset.length > than.length || (offset.length === than.length && offset > than);
