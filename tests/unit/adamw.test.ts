import { describe, expect, it } from 'vitest';
import { adamwStep, clipScale, finiteCheck, gradNormSquared } from '../../src/engine/ref/adamw.ts';
import { checkOp } from '../helpers/checkop.ts';
import { randArray } from '../helpers/fd.ts';

const exact = { atol: 1e-15, rtol: 1e-13 };

describe('adamw reference', () => {
  it('one step on one scalar, by hand', () => {
    const p = Float64Array.of(1),
      g = Float64Array.of(0.5),
      m = new Float64Array(1),
      v = new Float64Array(1);
    adamwStep(p, g, m, v, new Float64Array(0), 0, 1, 0.1, 0.9, 0.999, 1e-8, 0.01, 1, 0);
    // p·(1 − lr·wd) = 0.999; m = 0.05, v = 0.00025; m̂ = 0.5, v̂ = 0.25; update = 0.1 · 0.5 / (0.5 + 1e-8)
    expect(m[0]).toBeCloseTo(0.05, 15);
    expect(v[0]).toBeCloseTo(0.00025, 15);
    expect(p[0]).toBeCloseTo(0.999 - 0.05 / (0.5 + 1e-8), 15);
  });

  for (const [wd, maxNorm] of [
    [0, 0],
    [0.1, 0],
    [0, 0.5],
    [0.1, 0.5],
  ] as const) {
    it(`two steps vs the PyTorch formula, weight decay ${wd}, maxNorm ${maxNorm}`, () => {
      const N = 5,
        lr = 0.01,
        b1 = 0.9,
        b2 = 0.95,
        eps = 1e-8;
      const p0 = randArray(Float64Array, N, 1);
      const grads = [randArray(Float64Array, N, 2), randArray(Float64Array, N, 3)];
      const other = [randArray(Float64Array, 3, 4), randArray(Float64Array, 3, 5)]; // a second tensor's grads

      // the formula, written out: clip_grad_norm_ over both tensors, then torch.optim.AdamW
      const p = Float64Array.from(p0),
        m = new Float64Array(N),
        v = new Float64Array(N);
      for (let t = 1; t <= 2; t++) {
        const g = grads[t - 1]!,
          h = other[t - 1]!;
        let sq = 0;
        for (const x of [...g, ...h]) sq += x * x;
        const clip = maxNorm > 0 ? Math.min(1, maxNorm / (Math.sqrt(sq) + 1e-6)) : 1;
        for (let i = 0; i < N; i++) {
          const gi = g[i]! * clip;
          p[i] = p[i]! - lr * wd * p[i]!;
          m[i] = b1 * m[i]! + (1 - b1) * gi;
          v[i] = b2 * v[i]! + (1 - b2) * gi * gi;
          const mHat = m[i]! / (1 - b1 ** t),
            vHat = v[i]! / (1 - b2 ** t);
          p[i] = p[i]! - (lr * mHat) / (Math.sqrt(vHat) + eps);
        }
      }

      const rp = Float64Array.from(p0),
        rm = new Float64Array(N),
        rv = new Float64Array(N);
      const norms = new Float64Array(2);
      for (let t = 1; t <= 2; t++) {
        gradNormSquared(norms, grads[t - 1]!, N, 0);
        gradNormSquared(norms, other[t - 1]!, 3, 1);
        adamwStep(rp, grads[t - 1]!, rm, rv, norms, 2, N, lr, b1, b2, eps, wd, t, maxNorm);
      }
      checkOp('adamw.ref.param', rp, p, exact);
      checkOp('adamw.ref.m', rm, m, exact);
      checkOp('adamw.ref.v', rv, v, exact);
      if (maxNorm > 0) expect(clipScale(norms, 2, maxNorm)).toBeLessThan(1); // clipping was active
    });
  }

  it('clipScale is PyTorch clip_grad_norm_', () => {
    const norms = Float64Array.of(9, 16); // ‖g‖ = 5
    expect(clipScale(norms, 2, 1)).toBeCloseTo(1 / (5 + 1e-6), 15);
    expect(clipScale(norms, 2, 10)).toBe(1);
    expect(clipScale(norms, 2, 0)).toBe(1);
    expect(clipScale(norms, 1, 1)).toBeCloseTo(1 / (3 + 1e-6), 15);
  });

  it('finiteCheck flags NaN and ±Inf only, and never clears', () => {
    const flag = new Uint32Array(1);
    finiteCheck(flag, Float32Array.of(0, -0, 3.4028234663852886e38, -3.4028234663852886e38, 1e-45), 5);
    expect(flag[0]).toBe(0);
    for (const bad of [NaN, Infinity, -Infinity]) {
      flag[0] = 0;
      finiteCheck(flag, Float32Array.of(1, bad, 2), 3);
      expect(flag[0]).toBe(1);
    }
    finiteCheck(flag, Float32Array.of(1, 2), 2);
    expect(flag[0]).toBe(1);
  });
});
