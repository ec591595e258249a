import { describe, expect, it } from 'vitest';
import { erf, erfc, geluBackward, geluForward } from '../../src/engine/ref/gelu.ts';
import { checkGrad, dotLoss, randArray } from '../helpers/fd.ts';

describe('gelu reference', () => {
  it('erf and erfc match known values', () => {
    // x, erf(x), erfc(x) (CPython's math.erf and math.erfc)
    const known = [
      [0.1, 0.1124629160182849, 0.8875370839817152],
      [1, 0.8427007929497149, 0.15729920705028513],
      [2, 0.9953222650189527, 0.004677734981047265],
      [3.5, 0.9999992569016276, 7.430983723414128e-7],
      [10, 1, 2.088487583762545e-45],
    ] as const;
    for (const [x, e, c] of known) {
      expect(Math.abs(erf(x) - e)).toBeLessThan(1e-15);
      expect(Math.abs(erf(-x) + e)).toBeLessThan(1e-15);
      expect(Math.abs(erfc(x) - c) / c).toBeLessThan(1e-13);
      expect(Math.abs(erfc(-x) - (1 + e))).toBeLessThan(1e-15);
    }
  });

  it('dinp vs finite differences', () => {
    const N = 24;
    const x = randArray(Float64Array, N, 1, -6, 6);
    const g = randArray(Float64Array, N, 2);
    const out = new Float64Array(N);
    const loss = () => (geluForward(out, x, N), dotLoss(out, g));
    const dx = new Float64Array(N);
    geluBackward(dx, g, x, N, false);
    checkGrad('gelu.dinp', loss, x, dx);
  });
});
