import { describe, expect, it } from 'vitest';
import { unlikelihoodForwardBackward } from '../../src/engine/ref/unlikelihood.ts';
import { checkGrad, dotLoss, randArray } from '../helpers/fd.ts';

describe('unlikelihood reference', () => {
  const N = 4,
    V = 7;
  const targets = Uint32Array.of(3, 0, 6, 2);
  const weights = Float64Array.of(0.5, 0, 2, 1); // row 1 masked

  for (const [lo, hi] of [
    [-3, 3],
    [-8, 8],
  ] as const) {
    it(`dlogits vs finite differences of Σ w·loss, logits in [${lo}, ${hi}]`, () => {
      const x = randArray(Float64Array, N * V, 1, lo, hi);
      // row 3: p_y near 1 (1 − p_y ≈ 6·e^-8 ≈ 2e-3, above the clamp)
      for (let i = 0; i < V; i++) x[3 * V + i] = i === 2 ? 8 : 0;
      const losses = new Float64Array(N);
      const loss = () => (
        unlikelihoodForwardBackward(losses, null, x, targets, weights, N, V, false),
        dotLoss(losses, weights)
      );
      const dx = new Float64Array(N * V).fill(NaN);
      unlikelihoodForwardBackward(losses, dx, x, targets, weights, N, V, false);
      checkGrad('unlikelihood.dlogits', loss, x, dx);
    });
  }

  it('exact values: uniform logits, p_y = 1/V', () => {
    const losses = new Float64Array(1),
      d = new Float64Array(4);
    unlikelihoodForwardBackward(
      losses,
      d,
      new Float64Array(4),
      Uint32Array.of(1),
      Float64Array.of(1),
      1,
      4,
      false,
    );
    expect(losses[0]).toBeCloseTo(-Math.log(3 / 4), 15);
    // v = y: p_y = 1/4; v ≠ y: −p_y · p_v / (1 − p_y) = −(1/4)(1/4)/(3/4) = −1/12
    expect(d[1]).toBeCloseTo(0.25, 15);
    for (const v of [0, 2, 3]) expect(d[v]).toBeCloseTo(-1 / 12, 15);
  });

  it('p_y → 1: 1 − p_y from the other tokens; the clamp and its zero gradient', () => {
    const V = 3;
    // z = (40, 0, 0), y = 0: 1 − p_y = 2e^-40 / (1 + 2e^-40) ≈ 8.5e-18 (< 1e-5: clamp active)
    // z = (10, 0, 0), y = 0: 1 − p_y = 2e^-10 / (1 + 2e^-10), clamp inactive
    const x = Float64Array.of(40, 0, 0, 10, 0, 0);
    const losses = new Float64Array(2),
      d = new Float64Array(2 * V).fill(0.5);
    unlikelihoodForwardBackward(losses, d, x, Uint32Array.of(0, 0), Float64Array.of(1, 1), 2, V, true);
    expect(losses[0]).toBeCloseTo(-Math.log(1e-5), 14);
    expect([...d.subarray(0, V)]).toEqual([0.5, 0.5, 0.5]); // accumulate: untouched
    const q = (2 * Math.exp(-10)) / (1 + 2 * Math.exp(-10));
    expect(losses[1]).toBeCloseTo(-Math.log(q), 12);
    // accumulated onto 0.5: v = y gets p_y = 1 − q, each other token −p_y · (1/2)
    expect(d[3]).toBeCloseTo(0.5 + (1 - q), 14);
    expect(d[4]).toBeCloseTo(0.5 - (1 - q) / 2, 14);
    expect(d[5]).toBeCloseTo(0.5 - (1 - q) / 2, 14);
  });

  it('V = 1: 1 − p_y = 0, clamped, no gradient; target ≥ V ignored', () => {
    const losses = new Float64Array(2),
      d = new Float64Array(2).fill(NaN);
    unlikelihoodForwardBackward(
      losses,
      d,
      Float64Array.of(3, 4),
      Uint32Array.of(0, 5),
      Float64Array.of(1, 1),
      2,
      1,
      false,
    );
    expect(losses[0]).toBeCloseTo(-Math.log(1e-5), 14);
    expect([losses[1], d[0], d[1]]).toEqual([0, 0, 0]);
  });
});
