import { describe, expect, it } from 'vitest';
import { dequantize, quantize } from '../../src/engine/quant.ts';
import { matmulBackwardInput, matmulBackwardWeight, matmulForward } from '../../src/engine/ref/matmul.ts';
import { checkGrad, dotLoss, randArray } from '../helpers/fd.ts';

describe('matmul reference vs finite differences', () => {
  it('dinp and dweight (f32 weight)', () => {
    const B = 3,
      K = 5,
      N = 4;
    const x = randArray(Float64Array, B * K, 1);
    const w = randArray(Float64Array, N * K, 2);
    const g = randArray(Float64Array, B * N, 3);
    const out = new Float64Array(B * N);
    const loss = () => (matmulForward(out, x, w, B, K, N), dotLoss(out, g));
    const dx = new Float64Array(B * K),
      dw = new Float64Array(N * K);
    matmulBackwardInput(dx, g, w, B, K, N, false);
    matmulBackwardWeight(dw, g, x, B, K, N);
    checkGrad('matmul.dinp', loss, x, dx);
    checkGrad('matmul.dweight', loss, w, dw);
  });

  it('dinp through q8_0 / q4_0 weights is the f32 backward with the dequantized weight', () => {
    const B = 2,
      K = 32,
      N = 3;
    for (const dtype of ['q8_0', 'q4_0'] as const) {
      const wq = dequantize(dtype, quantize(dtype, randArray(Float32Array, N * K, 4)), N * K);
      const w = Float64Array.from(wq); // exact: dequantized values are f32
      const x = randArray(Float64Array, B * K, 5);
      const g = randArray(Float64Array, B * N, 6);
      const out = new Float64Array(B * N);
      const loss = () => (matmulForward(out, x, w, B, K, N), dotLoss(out, g));
      const dx = new Float64Array(B * K);
      matmulBackwardInput(dx, g, w, B, K, N, false);
      checkGrad(`matmul.${dtype}.dinp`, loss, x, dx);
    }
  });

  it('accumulate: forward and dinp add into what is there, dweight always adds', () => {
    const B = 2,
      K = 3,
      N = 2;
    const x = randArray(Float64Array, B * K, 7),
      w = randArray(Float64Array, N * K, 8);
    const g = randArray(Float64Array, B * N, 9);
    const fresh = new Float64Array(B * N);
    matmulForward(fresh, x, w, B, K, N);
    const acc = new Float64Array(B * N).fill(0.25);
    matmulForward(acc, x, w, B, K, N, true);
    expect([...acc]).toEqual([...fresh].map((v) => 0.25 + v));

    const dx = new Float64Array(B * K);
    matmulBackwardInput(dx, g, w, B, K, N, false);
    const dxAcc = new Float64Array(B * K).fill(-1);
    matmulBackwardInput(dxAcc, g, w, B, K, N, true);
    expect([...dxAcc]).toEqual([...dx].map((v) => -1 + v));
    const dxOver = new Float64Array(B * K).fill(7);
    matmulBackwardInput(dxOver, g, w, B, K, N, false);
    expect([...dxOver]).toEqual([...dx]);

    const dw = new Float64Array(N * K);
    matmulBackwardWeight(dw, g, x, B, K, N);
    const dw2 = new Float64Array(N * K).fill(0.5);
    matmulBackwardWeight(dw2, g, x, B, K, N);
    expect([...dw2]).toEqual([...dw].map((v) => 0.5 + v));
  });
});
