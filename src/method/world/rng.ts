/**
 * The world's seeded pseudo-random generator: mulberry32 (a 32-bit state advanced by the odd
 * constant 0x6D2B79F5, then mixed by two multiply–xorshift rounds), written out here so the world
 * depends on nothing else. The same seed gives the same stream on every JavaScript engine (only
 * 32-bit integer arithmetic: Math.imul, >>>). It is not cryptographic; it is small and fast.
 *
 * Streams are split by label: `rng.fork('teacher')` seeds a new generator from this one's seed and
 * the label's hash, without consuming this stream, so adding draws to one part of the world never
 * shifts another part.
 *
 * @example
 *   const r = new Rng(42);
 *   r.next();      // a float in [0, 1)
 *   r.int(1, 6);   // an integer in 1..6 (both ends included)
 *   r.fork('teacher').chance(0.3);
 */

/** FNV-1a 32-bit hash of a string (for fork labels). */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export class Rng {
  private state: number;
  /** The seed this generator started from (a 32-bit unsigned integer). */
  readonly seed: number;

  constructor(seed: number) {
    this.seed = seed >>> 0;
    this.state = this.seed;
  }

  /** The next 32-bit unsigned integer. */
  nextU32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** An integer in lo..hi, both included (lo ≤ hi). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** true with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** A uniformly chosen element of a non-empty array. */
  pick<T>(xs: readonly T[]): T {
    const x = xs[Math.floor(this.next() * xs.length)];
    if (x === undefined) throw new RangeError('Rng.pick: empty array');
    return x;
  }

  /** An index drawn with probability proportional to weights (all ≥ 0, sum > 0). */
  weighted(weights: readonly number[]): number {
    let total = 0;
    for (const w of weights) total += w;
    let u = this.next() * total;
    for (let i = 0; i < weights.length; i++) {
      u -= weights[i]!;
      if (u < 0) return i;
    }
    return weights.length - 1;
  }

  /** A new generator seeded from this one's seed and `label` (this stream is not advanced). */
  fork(label: string): Rng {
    return new Rng((Math.imul(this.seed ^ hash32(label), 0x9e3779b1) ^ hash32(label + '#')) >>> 0);
  }
}
