import { describe, it } from 'vitest';
import {
  logSoftmaxBackward,
  logSoftmaxForward,
  softmaxBackward,
  softmaxForward,
} from '../../src/engine/ref/softmax.ts';
import { checkGrad, dotLoss, randArray } from '../helpers/fd.ts';

describe('softmax reference vs finite differences', () => {
  const N = 3,
    V = 7;

  for (const temperature of [1, 0.7]) {
    it(`softmax dinp, temperature ${temperature}`, () => {
      const x = randArray(Float64Array, N * V, 1, -3, 3);
      const g = randArray(Float64Array, N * V, 2);
      const out = new Float64Array(N * V);
      const loss = () => (softmaxForward(out, x, N, V, temperature), dotLoss(out, g));
      loss();
      const dx = new Float64Array(N * V);
      softmaxBackward(dx, g, out, N, V, false, temperature);
      checkGrad('softmax.dinp', loss, x, dx);
    });
  }

  it('log-softmax dinp', () => {
    const x = randArray(Float64Array, N * V, 3, -3, 3);
    const g = randArray(Float64Array, N * V, 4);
    const out = new Float64Array(N * V);
    const loss = () => (logSoftmaxForward(out, x, N, V), dotLoss(out, g));
    loss();
    const dx = new Float64Array(N * V);
    logSoftmaxBackward(dx, g, out, N, V, false);
    checkGrad('log_softmax.dinp', loss, x, dx);
  });

  it('extreme logits ±300 stay finite and differentiable', () => {
    const x = randArray(Float64Array, N * V, 5, -300, 300);
    const g = randArray(Float64Array, N * V, 6);
    const out = new Float64Array(N * V);
    const loss = () => (logSoftmaxForward(out, x, N, V), dotLoss(out, g));
    loss();
    const dx = new Float64Array(N * V);
    logSoftmaxBackward(dx, g, out, N, V, false);
    checkGrad('log_softmax.dinp±300', loss, x, dx);
    const p = new Float64Array(N * V);
    const lossP = () => (softmaxForward(p, x, N, V), dotLoss(p, g));
    lossP();
    const dxp = new Float64Array(N * V);
    softmaxBackward(dxp, g, p, N, V, false);
    checkGrad('softmax.dinp±300', lossP, x, dxp);
  });

  it('accumulate adds to the previous gradient', () => {
    const x = randArray(Float64Array, N * V, 7);
    const g = randArray(Float64Array, N * V, 8);
    const out = new Float64Array(N * V);
    softmaxForward(out, x, N, V);
    const fresh = new Float64Array(N * V),
      acc = new Float64Array(N * V).fill(0.25);
    softmaxBackward(fresh, g, out, N, V, false);
    softmaxBackward(acc, g, out, N, V, true);
    for (let i = 0; i < N * V; i++) {
      if (Math.abs(acc[i]! - (fresh[i]! + 0.25)) > 1e-15) throw new Error(`accumulate mismatch at ${i}`);
    }
  });
});
