import { describe, it } from 'vitest';
import * as gpuOp from '../../src/engine/ops/meanpool.ts';
import * as ref from '../../src/engine/ref/meanpool.ts';
import { checkOp } from '../helpers/checkop.ts';
import { randArray, rng } from '../helpers/fd.ts';
import { testGpu } from '../helpers/gpu.ts';

/** A 0/1 mask with a random number of leading ones per row; row 0 all zeros when `emptyRow`. */
function makeMask(B: number, T: number, seed: number, emptyRow: boolean): Float32Array {
  const r = rng(seed),
    mask = new Float32Array(B * T);
  for (let b = 0; b < B; b++) {
    const len = emptyRow && b === 0 ? 0 : 1 + Math.floor(r() * T);
    for (let t = 0; t < len; t++) mask[b * T + t] = 1;
  }
  return mask;
}

async function check(B: number, T: number, C: number, accumulate: boolean, emptyRow: boolean): Promise<void> {
  const gpu = await testGpu();
  const inp = randArray(Float32Array, B * T * C, 1, -3, 3),
    mask = makeMask(B, T, B + T + C, emptyRow);
  const dout = randArray(Float32Array, B * C, 2),
    prev = randArray(Float32Array, B * T * C, 3);
  const out = new Float32Array(B * C),
    dinp = new Float32Array(prev);
  ref.meanpoolForward(out, inp, mask, B, T, C);
  ref.meanpoolBackward(dinp, dout, mask, B, T, C, accumulate);
  await gpu.checked(async () => {
    const tinp = gpu.fromData([B, T, C], inp, 'inp'),
      tmask = gpu.fromData([B, T], mask, 'mask');
    const tout = gpu.tensor([B, C], 'out'),
      tdout = gpu.fromData([B, C], dout, 'dout');
    const tdinp = gpu.fromData([B, T, C], prev, 'dinp');
    gpuOp.meanpoolForward(gpu, tout, tinp, tmask, B, T, C);
    gpuOp.meanpoolBackward(gpu, tdinp, tdout, tmask, B, T, C, accumulate);
    checkOp('meanpool_forward', await gpu.read(tout), out);
    checkOp('meanpool_backward', await gpu.read(tdinp), dinp);
    for (const t of [tinp, tmask, tout, tdout, tdinp]) t.buffer.destroy();
  });
}

describe('meanpool GPU vs reference', () => {
  for (const [B, T, C] of [
    [1, 1, 1],
    [2, 5, 3],
    [3, 17, 257],
    [4, 64, 100],
  ] as const) {
    for (const accumulate of [false, true]) {
      it(`B=${B} T=${T} C=${C} accumulate=${accumulate}`, () => check(B, T, C, accumulate, false));
    }
  }
  it('an all-masked row gives zeros (no division by zero)', () => check(3, 6, 10, false, true));
});
