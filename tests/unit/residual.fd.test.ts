import { describe, it } from 'vitest';
import { residualBackward, residualForward } from '../../src/engine/ref/residual.ts';
import { checkGrad, dotLoss, randArray } from '../helpers/fd.ts';

describe('residual reference vs finite differences', () => {
  it('da and db', () => {
    const N = 9;
    const a = randArray(Float64Array, N, 1),
      b = randArray(Float64Array, N, 2),
      g = randArray(Float64Array, N, 3);
    const out = new Float64Array(N);
    const loss = () => (residualForward(out, a, b, N), dotLoss(out, g));
    const da = new Float64Array(N),
      db = new Float64Array(N);
    residualBackward(da, db, g, N, false);
    checkGrad('residual.da', loss, a, da);
    checkGrad('residual.db', loss, b, db);
  });
});
