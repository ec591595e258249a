import { describe, it } from 'vitest';
import * as gpuOp from '../../src/engine/ops/rope.ts';
import * as ref from '../../src/engine/ref/rope.ts';
import { checkOp } from '../helpers/checkop.ts';
import { tolFor } from '../helpers/tolerances.ts';
import { randArray, rng } from '../helpers/fd.ts';
import { testGpu } from '../helpers/gpu.ts';

/** Positions 0..maxPos in a scrambled order, always including 0 and maxPos. */
function positionsFor(N: number, maxPos: number, seed: number): Uint32Array {
  const r = rng(seed);
  const p = new Uint32Array(N);
  for (let n = 0; n < N; n++) p[n] = Math.floor(r() * (maxPos + 1));
  p[0] = maxPos;
  if (N > 1) p[N - 1] = 0;
  return p;
}

describe('rope GPU vs reference', () => {
  const cases = [
    // N, NH, HS, max position, theta
    [1, 1, 2, 0, 10000],
    [5, 4, 16, 255, 10000],
    [7, 3, 8, 200, 500000],
    [3, 2, 64, 2048, 10000],
    [33, 2, 128, 2047, 10000],
    [9, 4, 16, 2048, 500000],
  ] as const;
  for (const [N, NH, HS, maxPos, theta] of cases) {
    it(`N=${N} NH=${NH} HS=${HS} pos≤${maxPos} theta=${theta}`, async () => {
      const gpu = await testGpu();
      const C = NH * HS;
      const x = randArray(Float32Array, N * C, 1);
      const pos = positionsFor(N, maxPos, 2);
      const dout = randArray(Float32Array, N * C, 3);
      const prev = randArray(Float32Array, N * C, 4);
      const out = new Float32Array(N * C);
      ref.ropeForward(out, x, pos, N, NH, HS, theta);
      const dx = new Float32Array(prev);
      ref.ropeBackward(dx, dout, pos, N, NH, HS, theta, true);
      const dxW = new Float32Array(N * C);
      ref.ropeBackward(dxW, dout, pos, N, NH, HS, theta, false);

      await gpu.checked(async () => {
        const tx = gpu.fromData([N, C], x, 'x'),
          tpos = gpu.fromData([N], pos, 'positions');
        const tout = gpu.tensor([N, C], 'out'),
          tin = gpu.fromData([N, C], x, 'x-inplace');
        const tdout = gpu.fromData([N, C], dout, 'dout');
        const tdx = gpu.fromData([N, C], prev, 'dx'),
          tdxW = gpu.fromData([N, C], prev, 'dx-write');
        gpuOp.ropeForward(gpu, tout, tx, tpos, N, NH, HS, theta);
        gpuOp.ropeForwardInplace(gpu, tin, tpos, N, NH, HS, theta);
        gpuOp.ropeBackward(gpu, tdx, tdout, tpos, N, NH, HS, theta, true);
        gpuOp.ropeBackward(gpu, tdxW, tdout, tpos, N, NH, HS, theta, false);
        // f32 angles: the honest tolerance grows with the position (see tolerances.ts)
        const tol = tolFor(maxPos < 256 ? 'rope' : 'rope_longpos');
        checkOp('rope_forward', await gpu.read(tout), out, tol);
        checkOp('rope_forward_inplace', await gpu.read(tin), out, tol);
        checkOp('rope_backward', await gpu.read(tdx), dx, tol);
        checkOp('rope_backward', await gpu.read(tdxW), dxW, tol);
        for (const t of [tx, tpos, tout, tin, tdout, tdx, tdxW]) t.buffer.destroy();
      });
    });
  }
});
