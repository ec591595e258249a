// nceweights has no backward (β comes from frozen models), so there is nothing to difference:
// this file checks the reference forward against hand-computed values.
import { describe, expect, it } from 'vitest';
import { nceWeightsForward } from '../../src/engine/ref/nceweights.ts';

describe('nceweights reference', () => {
  it('β = tanh of the masked mean KL; weights = mask · (0.5 + β) · scale', () => {
    const B = 3,
      T = 4;
    // sequence 0: masked KL 0.2 and 0.6 (the unmasked 9 must not count): β = tanh(0.4)
    // sequence 1: nothing masked: β = 0, weights 0; sequence 2: all masked, KL 0: β = 0
    const kl = Float64Array.of(0.2, 9, 0.6, 9, 1, 2, 3, 4, 0, 0, 0, 0);
    const mask = Float64Array.of(1, 0, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1);
    const beta = new Float64Array(B),
      w = new Float64Array(B * T);
    nceWeightsForward(beta, w, kl, mask, B, T, 0.25);
    expect(beta[0]).toBeCloseTo(Math.tanh(0.4), 15);
    expect([beta[1], beta[2]]).toEqual([0, 0]);
    const w0 = (0.5 + Math.tanh(0.4)) * 0.25;
    expect([...w]).toEqual([w0, 0, w0, 0, 0, 0, 0, 0, 0.125, 0.125, 0.125, 0.125]);
  });
});
