import { describe, it } from 'vitest';
import { swigluBackward, swigluForward } from '../../src/engine/ref/swiglu.ts';
import { checkGrad, dotLoss, randArray } from '../helpers/fd.ts';

describe('swiglu reference vs finite differences', () => {
  it('dgate and dup', () => {
    const N = 20;
    const gate = randArray(Float64Array, N, 1, -6, 6),
      up = randArray(Float64Array, N, 2, -2, 2);
    const g = randArray(Float64Array, N, 3);
    const out = new Float64Array(N);
    const loss = () => (swigluForward(out, gate, up, N), dotLoss(out, g));
    const dgate = new Float64Array(N),
      dup = new Float64Array(N);
    swigluBackward(dgate, dup, g, gate, up, N, false);
    checkGrad('swiglu.dgate', loss, gate, dgate);
    checkGrad('swiglu.dup', loss, up, dup);
  });
});
