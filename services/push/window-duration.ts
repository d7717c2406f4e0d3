/**
 * How long a batching window stays open: fixed when both bounds are equal, otherwise drawn
 * uniformly between them, which also makes it harder to tie an on-wiki action to a push on the wire.
 */
export function chooseWindowMs(minMs: number, maxMs: number, random: () => number = Math.random): number {
  if (minMs > maxMs) throw new RangeError(`window minimum ${minMs} ms exceeds its maximum ${maxMs} ms`);
  return minMs + Math.floor(random() * (maxMs - minMs + 1));
}
