import { describe, expect, it } from 'vitest';
import { argmax, createSamplers, Sampler, samplerSeeds, Xorshift } from '../../src/engine/infer/sampler.ts';

/** run.c's random_u32, transcribed independently: a u64 state in BigInt. */
function runcU32(seed: bigint, count: number): number[] {
  const M = (1n << 64n) - 1n;
  let s = seed;
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    s = s ^ (s >> 12n);
    s = (s ^ (s << 25n)) % (1n << 64n);
    s = s ^ (s >> 27n);
    out.push(Number(((s * 0x2545f4914f6cdd1dn) & M) / (1n << 32n)));
  }
  return out;
}

const logitsOf = (probs: number[]) => Float32Array.from(probs, Math.log);

describe('sampler', () => {
  it('xorshift matches run.c bit for bit', () => {
    // seed 42, computed with Python ints (known constants) and by the BigInt transcription above
    const known = [1456360119, 3359763283, 3393612768, 4054632243, 3283045847];
    expect(runcU32(42n, 5)).toEqual(known);
    const r = new Xorshift(42);
    expect(Array.from({ length: 5 }, () => r.nextU32())).toEqual(known);
    const f = new Xorshift(42);
    expect(f.nextF32()).toBe((known[0]! >>> 8) / 16777216);
    expect(f.nextF32()).toBeCloseTo(0.7822558283805847, 15);
    // a large seed exercises the high bits
    const big = 0xfedcba9876543210n;
    const rb = new Xorshift(big);
    expect(Array.from({ length: 100 }, () => rb.nextU32())).toEqual(runcU32(big, 100));
  });

  it('temperature 0 is argmax (first maximum on ties)', () => {
    const s = new Sampler(5, 0, 0.9, 1);
    expect(s.sample(Float32Array.from([0, 3, -1, 3, 2]))).toBe(1);
    expect(argmax([-5, -4, -4.5])).toBe(1);
    expect(s.rng.state).toBe(1n); // greedy draws no coin
  });

  it("multinomial follows run.c's coins", () => {
    const s = new Sampler(3, 1, 1, 42);
    const logits = logitsOf([0.6, 0.3, 0.1]);
    const before = Array.from(logits);
    // coins for seed 42: 0.339, 0.782, 0.790, 0.944, 0.764 → cdf 0.6 | 0.9 | 1.0
    expect(Array.from({ length: 5 }, () => s.sample(logits))).toEqual([0, 1, 1, 2, 1]);
    expect(Array.from(logits)).toEqual(before); // the caller's logits are untouched
  });

  it('top-p keeps the smallest prefix whose mass exceeds topp', () => {
    const logits = logitsOf([0.1, 0.6, 0.3]);
    // topp 0.8: sorted 0.6, 0.3 (mass 0.9 > 0.8) → coin·0.9 split at 0.6: 0.305→1, 0.704→2, 0.711→2, 0.850→2, 0.688→2
    const s = new Sampler(3, 1, 0.8, 42);
    expect(Array.from({ length: 5 }, () => s.sample(logits))).toEqual([1, 2, 2, 2, 2]);
    // topp 0.5: the top token alone already exceeds it
    const only = new Sampler(3, 1, 0.5, 7);
    for (let i = 0; i < 200; i++) expect(only.sample(logits)).toBe(1);
    // frequencies inside the nucleus are renormalized: 0.6/0.9 and 0.3/0.9; the tail never appears
    const f = new Sampler(3, 1, 0.8, 123);
    const counts = [0, 0, 0];
    for (let i = 0; i < 6000; i++) counts[f.sample(logits)]!++;
    expect(counts[0]).toBe(0);
    expect(counts[1]! / 6000).toBeCloseTo(2 / 3, 1);
  });

  it('temperature sharpens and flattens', () => {
    const logits = logitsOf([0.5, 0.3, 0.2]);
    const freq = (t: number) => {
      const s = new Sampler(3, t, 1, 99);
      let n = 0;
      for (let i = 0; i < 4000; i++) if (s.sample(logits) === 0) n++;
      return n / 4000;
    };
    expect(freq(0.25)).toBeGreaterThan(0.85); // 0.5^4 / Σ p^4 ≈ 0.86
    expect(freq(1)).toBeCloseTo(0.5, 1);
    expect(freq(10)).toBeLessThan(0.4);
  });

  it('is deterministic per seed', () => {
    const logits = Float32Array.from({ length: 50 }, (_, i) => Math.sin(i));
    const run = (seed: number) => {
      const s = new Sampler(50, 1.2, 0.95, seed);
      return Array.from({ length: 64 }, () => s.sample(logits));
    };
    expect(run(5)).toEqual(run(5));
    expect(run(5)).not.toEqual(run(6));
  });

  it('gives each sequence of a batch its own seed; sequence 0 keeps the seed', () => {
    expect(samplerSeeds(42, 1)).toEqual([42n]);
    const seeds = samplerSeeds(42, 8);
    expect(seeds[0]).toBe(42n);
    expect(new Set(seeds).size).toBe(8);
    expect(samplerSeeds(42, 8)).toEqual(seeds);
    expect(
      samplerSeeds(43, 8)
        .slice(1)
        .some((s) => seeds.includes(s)),
    ).toBe(false);
    const samplers = createSamplers(10, 1, 0.9, 42, 3);
    expect(samplers[0]!.rng.state).toBe(42n);
    expect(samplers[2]!.rng.state).toBe(seeds[2]);
  });

  it('rejects bad arguments', () => {
    expect(() => new Sampler(10, -1, 0.9, 1)).toThrow(/temperature/);
    expect(() => new Sampler(10, 1, 1.5, 1)).toThrow(/topp/);
    expect(() => new Sampler(10, 1, 0.9, -3)).toThrow(/seed/);
    expect(new Sampler(10, 1, 0.9, 0).rng.state).not.toBe(0n); // a zero state would stay zero
  });
});
