import { describe, expect, it } from 'vitest';
import * as gpuOp from '../../src/engine/ops/dropout.ts';
import * as ref from '../../src/engine/ref/dropout.ts';
import { checkOp } from '../helpers/checkop.ts';
import { randArray } from '../helpers/fd.ts';
import { testGpu } from '../helpers/gpu.ts';

describe('dropout GPU vs reference', () => {
  for (const N of [1, 257, 1000]) {
    for (const [p, seed] of [
      [0.05, 1],
      [0.5, 0xffffffff],
      [0, 3],
    ] as const) {
      it(`N=${N} p=${p} seed=${seed}`, async () => {
        const gpu = await testGpu();
        const x = randArray(Float32Array, N, 1),
          dout = randArray(Float32Array, N, 2),
          prev = randArray(Float32Array, N, 3);
        const out = new Float32Array(N),
          dx = new Float32Array(N),
          dxAcc = new Float32Array(prev);
        ref.dropoutForward(out, x, N, p, seed);
        ref.dropoutBackward(dx, dout, N, p, seed, false);
        ref.dropoutBackward(dxAcc, dout, N, p, seed, true);
        await gpu.checked(async () => {
          const tx = gpu.fromData([N], x, 'x'),
            tout = gpu.tensor([N], 'out'),
            tdout = gpu.fromData([N], dout, 'dout');
          const tdx = gpu.tensor([N], 'dx'),
            tdxAcc = gpu.fromData([N], prev, 'dxAcc');
          gpuOp.dropoutForward(gpu, tout, tx, N, p, seed);
          gpuOp.dropoutBackward(gpu, tdx, tdout, N, p, seed, false);
          gpuOp.dropoutBackward(gpu, tdxAcc, tdout, N, p, seed, true);
          checkOp('dropout_forward', await gpu.read(tout), out);
          checkOp('dropout_backward', await gpu.read(tdx), dx);
          checkOp('dropout_backward', await gpu.read(tdxAcc), dxAcc);
          for (const t of [tx, tout, tdout, tdx, tdxAcc]) t.buffer.destroy();
        });
      });
    }
  }

  it('GPU mask is bit-identical to the reference over 1e5 elements; keep rate ≈ 1 − p', async () => {
    const gpu = await testGpu();
    const N = 100_003,
      p = 0.05,
      seed = 20240601;
    const threshold = ref.dropoutThreshold(p),
      scale = ref.dropoutScale(p);
    await gpu.checked(async () => {
      const ones = gpu.fromData([N], new Float32Array(N).fill(1), 'ones'),
        tout = gpu.tensor([N], 'out');
      gpuOp.dropoutForward(gpu, tout, ones, N, p, seed);
      const got = await gpu.read(tout);
      let mismatches = 0,
        kept = 0;
      for (let i = 0; i < N; i++) {
        const want = ref.dropoutHash(seed, i) >= threshold ? scale : 0;
        if (got[i] !== want) mismatches++;
        if (want !== 0) kept++;
      }
      expect(mismatches).toBe(0);
      expect(Math.abs(kept / N - (1 - p))).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / N));
      for (const t of [ones, tout]) t.buffer.destroy();
    });
  });

  it('refuses p outside [0, 1)', async () => {
    const gpu = await testGpu();
    const t = gpu.tensor([4], 't');
    expect(() => gpuOp.dropoutForward(gpu, t, t, 4, 1, 0)).toThrow(/outside \[0, 1\)/);
    t.buffer.destroy();
  });
});
