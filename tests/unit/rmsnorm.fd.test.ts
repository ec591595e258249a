import { describe, it } from 'vitest';
import { rmsnormBackward, rmsnormForward } from '../../src/engine/ref/rmsnorm.ts';
import { checkGrad, dotLoss, randArray } from '../helpers/fd.ts';

describe('rmsnorm reference vs finite differences', () => {
  it('dinp and dweight', () => {
    const N = 3,
      C = 7,
      eps = 1e-5;
    const x = randArray(Float64Array, N * C, 1);
    const w = randArray(Float64Array, C, 2);
    const g = randArray(Float64Array, N * C, 3);
    const out = new Float64Array(N * C),
      rstd = new Float64Array(N);
    const loss = () => (rmsnormForward(out, rstd, x, w, N, C, eps), dotLoss(out, g));
    loss();
    const dx = new Float64Array(N * C),
      dw = new Float64Array(C);
    rmsnormBackward(dx, dw, g, x, w, rstd, N, C, false);
    checkGrad('rmsnorm.dinp', loss, x, dx);
    checkGrad('rmsnorm.dweight', loss, w, dw);
  });
});
