import { describe, expect, it } from 'vitest';
import { biasBackward, biasForward } from '../../src/engine/ref/bias.ts';
import { checkGrad, dotLoss, randArray } from '../helpers/fd.ts';

describe('bias reference', () => {
  it('db vs finite differences; the input gradient is dout', () => {
    const N = 4,
      C = 7;
    const x = randArray(Float64Array, N * C, 1),
      b = randArray(Float64Array, C, 2),
      g = randArray(Float64Array, N * C, 3);
    const loss = () => {
      const out = new Float64Array(x);
      biasForward(out, b, N, C);
      return dotLoss(out, g);
    };
    const db = new Float64Array(C);
    biasBackward(db, g, N, C);
    checkGrad('bias.db', loss, b, db);
    checkGrad('bias.dx', loss, x, g);
  });

  it('exact values; db is added to', () => {
    const x = Float64Array.of(1, 2, 3, 4, 5, 6);
    biasForward(x, Float64Array.of(10, 20, 30), 2, 3);
    expect([...x]).toEqual([11, 22, 33, 14, 25, 36]);
    const db = Float64Array.of(1, 1, 1);
    biasBackward(db, Float64Array.of(1, 2, 3, 4, 5, 6), 2, 3);
    expect([...db]).toEqual([6, 8, 10]);
  });
});
