import { describe, expect, it } from 'vitest';
import { crossentropyForward, crossentropyForwardBackward } from '../../src/engine/ref/crossentropy.ts';
import { checkGrad, dotLoss, randArray } from '../helpers/fd.ts';

describe('crossentropy reference vs finite differences', () => {
  const N = 4,
    V = 7;
  const targets = Uint32Array.of(3, 0, 6, 0xffffffff);

  for (const [lo, hi] of [
    [-3, 3],
    [-300, 300],
  ] as const) {
    it(`dlogits = d(Σ weights·losses)/dlogits, logits in [${lo}, ${hi}]`, () => {
      const x = randArray(Float64Array, N * V, 1, lo, hi);
      const weights = Float64Array.of(0.5, 0, 1.5, 1); // row 1 masked, row 3 ignored
      const losses = new Float64Array(N);
      const loss = () => (crossentropyForward(losses, x, targets, N, V), dotLoss(losses, weights));
      loss();
      const dx = new Float64Array(N * V).fill(NaN); // written, not added
      crossentropyForwardBackward(losses, dx, x, targets, weights, N, V);
      checkGrad('crossentropy.dlogits', loss, x, dx);
    });
  }

  it('loss is −log softmax[target]', () => {
    const x = Float64Array.of(1, 2, 3, -300, 300, 0);
    const losses = new Float64Array(2);
    crossentropyForward(losses, x, [0, 0], 2, 3);
    const lse0 = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3));
    expect(losses[0]).toBeCloseTo(lse0 - 1, 12);
    expect(losses[1]).toBeCloseTo(600, 9);
  });
});
