import { describe, it } from 'vitest';
import { embeddingBackward, embeddingForward } from '../../src/engine/ref/embedding.ts';
import { checkGrad, dotLoss, randArray } from '../helpers/fd.ts';

describe('embedding reference vs finite differences', () => {
  it('dwte with repeated tokens and unused rows', () => {
    const N = 7,
      C = 3,
      V = 6;
    const tokens = new Uint32Array([5, 2, 5, 0, 2, 5, 3]);
    const wte = randArray(Float64Array, V * C, 1),
      g = randArray(Float64Array, N * C, 2);
    const out = new Float64Array(N * C);
    const loss = () => (embeddingForward(out, tokens, wte, N, C), dotLoss(out, g));
    const dwte = new Float64Array(V * C);
    embeddingBackward(dwte, g, tokens, N, C, V);
    checkGrad('embedding.dwte', loss, wte, dwte);
  });
});
