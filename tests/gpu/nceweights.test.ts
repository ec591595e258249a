import { describe, expect, it } from 'vitest';
import * as gpuOp from '../../src/engine/ops/nceweights.ts';
import * as ref from '../../src/engine/ref/nceweights.ts';
import { checkOp } from '../helpers/checkop.ts';
import { randArray, rng } from '../helpers/fd.ts';
import { testGpu } from '../helpers/gpu.ts';

function randMask(n: number, seed: number, p = 0.6): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => (r() < p ? 1 : 0));
}

async function check(B: number, T: number, kl: Float32Array, mask: Float32Array, scale: number) {
  const gpu = await testGpu();
  const beta = new Float32Array(B),
    weights = new Float32Array(B * T);
  ref.nceWeightsForward(beta, weights, kl, mask, B, T, scale);
  for (const b of beta) expect(b >= -1 && b < 1 + 1e-7).toBe(true);
  await gpu.checked(async () => {
    const tkl = gpu.fromData([B, T], kl, 'kl'),
      tmask = gpu.fromData([B, T], mask, 'mask');
    const tbeta = gpu.fromData([B], new Float32Array(B).fill(NaN), 'beta'),
      tw = gpu.fromData([B, T], new Float32Array(B * T).fill(NaN), 'weights');
    gpuOp.nceWeightsForward(gpu, tbeta, tw, tkl, tmask, B, T, scale);
    checkOp('nceweights_forward', await gpu.read(tbeta), beta);
    checkOp('nceweights_forward', await gpu.read(tw), weights);
    for (const t of [tkl, tmask, tbeta, tw]) t.buffer.destroy();
  });
}

describe('nceweights GPU vs reference', () => {
  for (const [B, T] of [
    [1, 1],
    [1, 7],
    [3, 13],
    [4, 256],
    [2, 1000],
    [300, 5],
  ] as const) {
    it(`B=${B} T=${T}`, () => {
      const mask = randMask(B * T, B + T);
      const count = mask.reduce((a, b) => a + b, 0);
      return check(B, T, randArray(Float32Array, B * T, B * T, 0, 2), mask, 0.5 / Math.max(1, count));
    });
  }

  it('all-masked, none-masked, single-token sequences; KL large, 0 and slightly negative', () => {
    const B = 5,
      T = 6;
    const kl = randArray(Float32Array, B * T, 7, 0, 3);
    const mask = randMask(B * T, 8);
    mask.fill(1, 0, T); // sequence 0: every token
    mask.fill(0, T, 2 * T); // sequence 1: none (β = 0, weights 0)
    mask.fill(0, 2 * T, 3 * T);
    mask[2 * T + 4] = 1; // sequence 2: one token, KL 500 (β = tanh 500 = 1)
    kl[2 * T + 4] = 500;
    kl.fill(0, 3 * T, 4 * T); // sequence 3: KL 0 (β = 0)
    kl.fill(-1e-7, 4 * T, 5 * T); // sequence 4: rounding below 0 (β ≈ −1e-7, no NaN)
    mask.fill(1, 4 * T, 5 * T);
    return check(B, T, kl, mask, 0.5);
  });
});
