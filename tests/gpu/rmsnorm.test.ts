import { describe, it } from 'vitest';
import * as gpuOp from '../../src/engine/ops/rmsnorm.ts';
import * as ref from '../../src/engine/ref/rmsnorm.ts';
import { checkOp } from '../helpers/checkop.ts';
import { tolFor } from '../helpers/tolerances.ts';
import { randArray } from '../helpers/fd.ts';
import { testGpu } from '../helpers/gpu.ts';

describe('rmsnorm GPU vs reference', () => {
  for (const [N, C] of [
    [1, 1],
    [5, 64],
    [3, 100],
    [2, 1000],
    [70, 33],
  ] as const) {
    it(`N=${N} C=${C}`, async () => {
      const gpu = await testGpu();
      const x = randArray(Float32Array, N * C, 1, -3, 3);
      const w = randArray(Float32Array, C, 2);
      const dout = randArray(Float32Array, N * C, 3);
      const prev = randArray(Float32Array, N * C, 4);
      const out = new Float32Array(N * C),
        rstd = new Float32Array(N);
      ref.rmsnormForward(out, rstd, x, w, N, C, 1e-5);
      const dx = new Float32Array(prev),
        dw = new Float32Array(C).fill(0.5);
      ref.rmsnormBackward(dx, dw, dout, x, w, rstd, N, C, true);

      await gpu.checked(async () => {
        const tx = gpu.fromData([N, C], x, 'x'),
          tw = gpu.fromData([C], w, 'w');
        const tout = gpu.tensor([N, C], 'out'),
          trstd = gpu.tensor([N], 'rstd');
        const tdout = gpu.fromData([N, C], dout, 'dout');
        const tdx = gpu.fromData([N, C], prev, 'dx'),
          tdw = gpu.fromData([C], new Float32Array(C).fill(0.5), 'dw');
        gpuOp.rmsnormForward(gpu, tout, trstd, tx, tw, N, C, 1e-5);
        gpuOp.rmsnormBackward(gpu, tdx, tdw, tdout, tx, tw, trstd, N, C, true);
        checkOp('rmsnorm_forward', await gpu.read(tout), out);
        checkOp('rmsnorm_forward', await gpu.read(trstd), rstd);
        for (const variant of ['parallel', 'serial'] as const) {
          gpu.upload(tout, new Float32Array(N * C).fill(NaN));
          gpuOp.rmsnormForward(gpu, tout, trstd, tx, tw, N, C, 1e-5, variant);
          checkOp(`rmsnorm_forward(${variant})`, await gpu.read(tout), out, tolFor('rmsnorm_forward'));
          checkOp(`rmsnorm_forward(${variant})`, await gpu.read(trstd), rstd, tolFor('rmsnorm_forward'));
        }
        checkOp('rmsnorm_backward', await gpu.read(tdx), dx);
        checkOp('rmsnorm_backward', await gpu.read(tdw), dw);
        const dxW = new Float32Array(N * C); // accumulate false: written, not added
        ref.rmsnormBackward(dxW, null, dout, x, w, rstd, N, C, false);
        for (const variant of ['parallel', 'serial'] as const) {
          gpu.upload(tdx, prev);
          gpu.upload(tdw, new Float32Array(C).fill(0.5));
          gpuOp.rmsnormBackward(gpu, tdx, tdw, tdout, tx, tw, trstd, N, C, true, variant);
          checkOp(`rmsnorm_backward(${variant})`, await gpu.read(tdx), dx, tolFor('rmsnorm_backward'));
          checkOp(`rmsnorm_backward(${variant})`, await gpu.read(tdw), dw, tolFor('rmsnorm_backward'));
          gpu.upload(tdx, new Float32Array(N * C).fill(NaN));
          gpuOp.rmsnormBackward(gpu, tdx, null, tdout, tx, tw, trstd, N, C, false, variant);
          checkOp(`rmsnorm_backward(${variant})`, await gpu.read(tdx), dxW, tolFor('rmsnorm_backward'));
        }
        for (const t of [tx, tw, tout, trstd, tdout, tdx, tdw]) t.buffer.destroy();
      });
    });
  }
});
