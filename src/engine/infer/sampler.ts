/**
 * llama2.c's sampler (run.c `sample`), seeded and bit-exact with it: the xorshift64* RNG, argmax at
 * temperature 0, else softmax(logits / temperature) in float32 then multinomial or top-p.
 *
 * @example
 *   const sampler = new Sampler(512, 1.0, 0.9, 42);
 *   const next = sampler.sample(logits); // logits is not modified
 */
import { EngineError } from '../errors.ts';

const U64 = (1n << 64n) - 1n;
const XORSHIFT_STAR = 0x2545f4914f6cdd1dn;
const GOLDEN = 0x9e3779b97f4a7c15n;
/** The state a seed of 0 is replaced by: xorshift's state 0 stays 0 forever (run.c replaces 0 by the clock). */
export const ZERO_SEED_STATE = GOLDEN;

/** run.c's random_u32/random_f32 on a u64 state. */
export class Xorshift {
  state: bigint;
  constructor(seed: number | bigint) {
    this.state = toSeed(seed);
  }

  /** state ^= state >> 12; state ^= state << 25; state ^= state >> 27; return (state * 0x2545F4914F6CDD1D) >> 32. */
  nextU32(): number {
    let s = this.state;
    s ^= s >> 12n;
    s = (s ^ (s << 25n)) & U64;
    s ^= s >> 27n;
    this.state = s;
    return Number(((s * XORSHIFT_STAR) & U64) >> 32n);
  }

  /** A float32 in [0, 1): the top 24 bits of nextU32 / 2^24. */
  nextF32(): number {
    return (this.nextU32() >>> 8) / 16777216;
  }
}

export class Sampler {
  readonly vocabSize: number;
  /** stored as float32, like run.c's Sampler. */
  readonly temperature: number;
  readonly topp: number;
  readonly rng: Xorshift;
  private readonly probs: Float32Array;
  private readonly order: Int32Array;

  constructor(vocabSize: number, temperature: number, topp: number, seed: number | bigint) {
    if (!Number.isInteger(vocabSize) || vocabSize <= 0)
      throw new EngineError('BAD_ARGUMENT', `Sampler: vocabSize ${vocabSize} must be a positive integer.`);
    if (!(temperature >= 0) || !Number.isFinite(temperature))
      throw new EngineError(
        'BAD_ARGUMENT',
        `Sampler: temperature ${temperature} must be a number ≥ 0 (0 = greedy).`,
      );
    if (!(topp >= 0 && topp <= 1))
      throw new EngineError('BAD_ARGUMENT', `Sampler: topp ${topp} must be in [0, 1] (1 = off).`);
    this.vocabSize = vocabSize;
    this.temperature = Math.fround(temperature);
    this.topp = Math.fround(topp);
    this.rng = new Xorshift(seed);
    this.probs = new Float32Array(vocabSize);
    this.order = new Int32Array(vocabSize);
  }

  /** The next token for these logits (length ≥ vocabSize; only the first vocabSize are read). */
  sample(logits: Float32Array): number {
    const n = this.vocabSize;
    if (this.temperature === 0) return argmax(logits, n);
    const p = this.probs;
    for (let i = 0; i < n; i++) p[i] = logits[i]! / this.temperature; // Float32Array stores round like C's float
    softmaxF32(p, n);
    const coin = this.rng.nextF32();
    if (this.topp <= 0 || this.topp >= 1) return sampleMult(p, n, coin);
    return this.sampleTopp(p, n, coin);
  }

  /** run.c's sample_topp: drop p < (1-topp)/(n-1), sort descending, keep the prefix whose mass first exceeds topp. */
  private sampleTopp(p: Float32Array, n: number, coin: number): number {
    const cutoff = Math.fround(Math.fround(1 - this.topp) / (n - 1));
    let n0 = 0;
    for (let i = 0; i < n; i++) if (p[i]! >= cutoff) this.order[n0++] = i;
    // descending probability; equal probabilities keep index order (run.c's qsort leaves ties unspecified)
    const idx = this.order.subarray(0, n0).sort((a, b) => p[b]! - p[a]! || a - b);
    let cumulative = 0;
    let last = n0 - 1;
    for (let i = 0; i < n0; i++) {
      cumulative = Math.fround(cumulative + p[idx[i]!]!);
      if (cumulative > this.topp) {
        last = i;
        break;
      }
    }
    const r = Math.fround(coin * cumulative);
    let cdf = 0;
    for (let i = 0; i <= last; i++) {
      cdf = Math.fround(cdf + p[idx[i]!]!);
      if (r < cdf) return idx[i]!;
    }
    return idx[last]!;
  }
}

/** Index of the first maximum of x[0..n). */
export function argmax(x: ArrayLike<number>, n = x.length): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

/** run.c's softmax in float32: x[i] = expf(x[i] - max) / Σ, the sum accumulated in float32. */
export function softmaxF32(x: Float32Array, n = x.length): void {
  let max = x[0]!;
  for (let i = 1; i < n; i++) if (x[i]! > max) max = x[i]!;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    x[i] = Math.exp(Math.fround(x[i]! - max));
    sum = Math.fround(sum + x[i]!);
  }
  for (let i = 0; i < n; i++) x[i] = x[i]! / sum;
}

function sampleMult(p: Float32Array, n: number, coin: number): number {
  let cdf = 0;
  for (let i = 0; i < n; i++) {
    cdf = Math.fround(cdf + p[i]!);
    if (coin < cdf) return i;
  }
  return n - 1;
}

/**
 * One seed per sequence of a batch of m: sequence 0 gets `seed` itself (so m = 1 reproduces run.c),
 * sequence i ≥ 1 gets splitmix64(seed + i·0x9E3779B97F4A7C15), i.e. the i-th output of a splitmix64
 * stream started at seed — well-mixed, distinct streams even for consecutive seeds.
 */
export function samplerSeeds(seed: number | bigint, m: number): bigint[] {
  const s0 = toSeed(seed);
  const out: bigint[] = [];
  for (let i = 0; i < m; i++) out.push(i === 0 ? s0 : toSeed(splitmix64((s0 + BigInt(i) * GOLDEN) & U64)));
  return out;
}

/** m samplers, one per sequence, seeded by samplerSeeds. */
export function createSamplers(
  vocabSize: number,
  temperature: number,
  topp: number,
  seed: number | bigint,
  m: number,
): Sampler[] {
  return samplerSeeds(seed, m).map((s) => new Sampler(vocabSize, temperature, topp, s));
}

/** splitmix64's output function (the state already advanced by the caller). */
export function splitmix64(x: bigint): bigint {
  let z = x & U64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & U64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & U64;
  return z ^ (z >> 31n);
}

function toSeed(seed: number | bigint): bigint {
  if (typeof seed === 'number' && (!Number.isSafeInteger(seed) || seed < 0)) {
    throw new EngineError(
      'BAD_ARGUMENT',
      `seed ${seed} must be a non-negative integer below 2^53 (or a bigint below 2^64).`,
    );
  }
  const s = BigInt(seed);
  if (s < 0n || s > U64) throw new EngineError('BAD_ARGUMENT', `seed ${s} must be in [0, 2^64).`);
  return s === 0n ? ZERO_SEED_STATE : s;
}
