import { describe, expect, it } from 'vitest';
import { ropeBackward, ropeForward, ropeForwardInplace } from '../../src/engine/ref/rope.ts';
import { checkGrad, dotLoss, randArray } from '../helpers/fd.ts';

describe('rope reference vs finite differences', () => {
  it('dinp', () => {
    const N = 3,
      NH = 2,
      HS = 6,
      theta = 10000;
    const pos = new Uint32Array([0, 7, 2048]);
    const x = randArray(Float64Array, N * NH * HS, 1);
    const g = randArray(Float64Array, N * NH * HS, 2);
    const out = new Float64Array(N * NH * HS);
    const loss = () => (ropeForward(out, x, pos, N, NH, HS, theta), dotLoss(out, g));
    const dx = new Float64Array(N * NH * HS);
    ropeBackward(dx, g, pos, N, NH, HS, theta, false);
    checkGrad('rope.dinp', loss, x, dx);
  });

  it('follows run.c: pair (2i, 2i+1) of each head turns by pos / theta^(2i/HS); in place agrees', () => {
    const NH = 2,
      HS = 4,
      theta = 10000,
      p = 3;
    const x = new Float64Array([1, 0, 1, 0, 0, 1, 0, 1]);
    const out = new Float64Array(8);
    ropeForward(out, x, new Uint32Array([p]), 1, NH, HS, theta);
    const f1 = 1 / Math.sqrt(theta); // i = 1: theta^(2/4)
    const want = [
      Math.cos(p),
      Math.sin(p),
      Math.cos(p * f1),
      Math.sin(p * f1),
      -Math.sin(p),
      Math.cos(p),
      -Math.sin(p * f1),
      Math.cos(p * f1),
    ];
    for (let j = 0; j < 8; j++) expect(out[j]).toBeCloseTo(want[j]!, 12);
    ropeForwardInplace(x, new Uint32Array([p]), 1, NH, HS, theta);
    expect([...x]).toEqual([...out]);
  });
});
