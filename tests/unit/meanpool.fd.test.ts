import { describe, it } from 'vitest';
import { meanpoolBackward, meanpoolForward } from '../../src/engine/ref/meanpool.ts';
import { checkGrad, dotLoss, randArray } from '../helpers/fd.ts';

describe('meanpool reference vs finite differences', () => {
  it('dinp, with a partly and a fully masked row', () => {
    const B = 3,
      T = 4,
      C = 5;
    const mask = new Float64Array([1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1]);
    const inp = randArray(Float64Array, B * T * C, 1),
      g = randArray(Float64Array, B * C, 2);
    const out = new Float64Array(B * C);
    const loss = () => (meanpoolForward(out, inp, mask, B, T, C), dotLoss(out, g));
    const dinp = new Float64Array(B * T * C);
    meanpoolBackward(dinp, g, mask, B, T, C, false);
    checkGrad('meanpool.dinp', loss, inp, dinp);
  });
});
