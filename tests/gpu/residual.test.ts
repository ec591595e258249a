import { describe, expect, it } from 'vitest';
import * as gpuOp from '../../src/engine/ops/residual.ts';
import * as ref from '../../src/engine/ref/residual.ts';
import { checkOp } from '../helpers/checkop.ts';
import { randArray } from '../helpers/fd.ts';
import { testGpu } from '../helpers/gpu.ts';

describe('residual GPU vs reference', () => {
  for (const N of [1, 255, 256, 257, 1000]) {
    for (const accumulate of [false, true]) {
      it(`N=${N} accumulate=${accumulate}`, async () => {
        const gpu = await testGpu();
        const a = randArray(Float32Array, N, 1, -3, 3),
          b = randArray(Float32Array, N, 2, -3, 3);
        const dout = randArray(Float32Array, N, 3),
          prevA = randArray(Float32Array, N, 4),
          prevB = randArray(Float32Array, N, 5);
        const out = new Float32Array(N);
        ref.residualForward(out, a, b, N);
        const da = new Float32Array(prevA),
          db = new Float32Array(prevB);
        ref.residualBackward(da, db, dout, N, accumulate);
        const x = new Float32Array(a);
        ref.addInplace(x, b, N);
        ref.scaleInplace(x, -0.375, N);

        await gpu.checked(async () => {
          const ta = gpu.fromData([N], a, 'a'),
            tb = gpu.fromData([N], b, 'b'),
            tout = gpu.tensor([N], 'out');
          const tdout = gpu.fromData([N], dout, 'dout');
          const tda = gpu.fromData([N], prevA, 'da'),
            tdb = gpu.fromData([N], prevB, 'db');
          const tx = gpu.fromData([N], a, 'x');
          gpuOp.residualForward(gpu, tout, ta, tb, N);
          gpuOp.residualBackward(gpu, tda, tdb, tdout, N, accumulate);
          gpuOp.addInplace(gpu, tx, tb, N);
          gpuOp.scaleInplace(gpu, tx, -0.375, N);
          checkOp('residual_forward', await gpu.read(tout), out);
          checkOp('residual_backward', await gpu.read(tda), da);
          checkOp('residual_backward', await gpu.read(tdb), db);
          checkOp('residual_forward', await gpu.read(tx), x);
          for (const t of [ta, tb, tout, tdout, tda, tdb, tx]) t.buffer.destroy();
        });
      });
    }
  }

  it('grid splits into 2D past the per-dimension limit', async () => {
    const gpu = await testGpu();
    const max = gpu.limits.maxComputeWorkgroupsPerDimension ?? 65535;
    expect(gpuOp.grid(gpu, 1, 256)).toEqual([1, 1]);
    expect(gpuOp.grid(gpu, max * 256, 256)).toEqual([max, 1]);
    expect(gpuOp.grid(gpu, max * 256 + 1, 256)).toEqual([max, 2]);
  });

  it('large N uses a 2D grid (every element, none twice)', async () => {
    const gpu = await testGpu();
    const max = gpu.limits.maxComputeWorkgroupsPerDimension ?? 65535;
    const N = max * 256 + 1000; // one workgroup row past the limit
    const x = new Float32Array(N);
    for (let i = 0; i < N; i++) x[i] = i % 1024;
    await gpu.checked(async () => {
      const tx = gpu.fromData([N], x, 'x'),
        ty = gpu.fromData([N], x, 'y');
      gpuOp.scaleInplace(gpu, tx, 2, N);
      gpuOp.addInplace(gpu, tx, ty, N);
      const got = await gpu.read(tx);
      const want = new Float32Array(N);
      for (let i = 0; i < N; i++) want[i] = 3 * (i % 1024);
      checkOp('residual_forward', got, want);
      tx.buffer.destroy();
      ty.buffer.destroy();
    });
  });
});
