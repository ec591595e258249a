import { describe, expect, it } from 'vitest';
import {
  dropoutBackward,
  dropoutForward,
  dropoutHash,
  dropoutThreshold,
} from '../../src/engine/ref/dropout.ts';
import { checkGrad, dotLoss, randArray } from '../helpers/fd.ts';

describe('dropout reference', () => {
  it('hash is pinned (saved runs replay the same masks); values from an independent Python big-int version', () => {
    expect([0, 1, 2, 1000].map((i) => dropoutHash(0, i))).toEqual([
      817759070, 1583546800, 3259027186, 3536873511,
    ]);
    expect([0, 1, 2, 1000].map((i) => dropoutHash(0xdeadbeef, i))).toEqual([
      5572231, 2078984711, 2757582017, 894395603,
    ]);
  });

  it('keeps ≈ 1 − p of 1e5 elements, and seeds give different masks', () => {
    const N = 100_000;
    for (const p of [0.05, 0.5]) {
      const t = dropoutThreshold(p);
      let kept = 0,
        differ = 0;
      for (let i = 0; i < N; i++) {
        const k1 = dropoutHash(7, i) >= t,
          k2 = dropoutHash(8, i) >= t;
        kept += k1 ? 1 : 0;
        differ += k1 !== k2 ? 1 : 0;
      }
      const sigma = Math.sqrt((p * (1 - p)) / N);
      expect(Math.abs(kept / N - (1 - p))).toBeLessThan(5 * sigma);
      // independent masks disagree on 2p(1 − p) of the elements
      expect(Math.abs(differ / N - 2 * p * (1 - p))).toBeLessThan(0.01);
    }
  });

  it('p = 0 keeps everything; p outside [0, 1) is refused', () => {
    expect(dropoutThreshold(0)).toBe(0);
    expect(() => dropoutThreshold(1)).toThrow(/outside \[0, 1\)/);
    expect(() => dropoutThreshold(-0.1)).toThrow(/outside/);
    expect(() => dropoutThreshold(NaN)).toThrow(/outside/);
  });

  it('dinp vs finite differences (fixed mask)', () => {
    const N = 40,
      p = 0.3,
      seed = 11;
    const x = randArray(Float64Array, N, 1),
      g = randArray(Float64Array, N, 2);
    const out = new Float64Array(N);
    const loss = () => (dropoutForward(out, x, N, p, seed), dotLoss(out, g));
    const dx = new Float64Array(N);
    dropoutBackward(dx, g, N, p, seed, false);
    expect(dx.some((v) => v === 0) && dx.some((v) => v !== 0)).toBe(true);
    checkGrad('dropout.dinp', loss, x, dx);
  });
});
