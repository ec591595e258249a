import { describe, it } from 'vitest';
import { eluBackward, eluForward } from '../../src/engine/ref/elu.ts';
import { checkGrad, dotLoss, randArray } from '../helpers/fd.ts';

describe('elu reference vs finite differences', () => {
  it('dinp (both branches)', () => {
    const N = 20;
    const x = randArray(Float64Array, N, 1, -4, 4);
    const g = randArray(Float64Array, N, 2);
    const out = new Float64Array(N);
    const loss = () => (eluForward(out, x, N), dotLoss(out, g));
    const dx = new Float64Array(N);
    eluBackward(dx, g, x, N, false);
    checkGrad('elu.dinp', loss, x, dx);
  });
});
