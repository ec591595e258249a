// Per-kernel timing from timestamp queries: every dispatch timed and attributed to its kernel.
import { describe, expect, it } from 'vitest';
import { Profiler } from '../../src/engine/gpu/profiler.ts';
import { addInplace } from '../../src/engine/ops/residual.ts';
import { rmsnormForward } from '../../src/engine/ops/rmsnorm.ts';
import { testGpu } from '../helpers/gpu.ts';

describe('profiler', () => {
  it('times each dispatch and groups by kernel; results stay correct', async () => {
    const gpu = await testGpu();
    const x = gpu.fromData([4, 64], new Float32Array(256).fill(1), 'x');
    const y = gpu.fromData([4, 64], new Float32Array(256).fill(2), 'y');
    const w = gpu.fromData([64], new Float32Array(64).fill(1), 'w');
    const out = gpu.tensor([4, 64], 'out'),
      rstd = gpu.tensor([4], 'rstd');
    const prof = Profiler.attach(gpu);
    await gpu.checked(async () => {
      for (let i = 0; i < 3; i++) addInplace(gpu, x, y, 256);
      rmsnormForward(gpu, out, rstd, x, w, 4, 64, 1e-5);
      await prof.collect();
    });
    const rows = prof.table();
    expect(rows.map((r) => r.kernel).sort()).toEqual(
      [
        rows.find((r) => r.kernel.startsWith('residual.residual_add_inplace'))!.kernel,
        rows.find((r) => r.kernel.startsWith('rmsnorm'))!.kernel,
      ].sort(),
    );
    // the add runs on vec4s when N % 4 == 0 (residual_add_inplace4)
    expect(rows.find((r) => r.kernel.startsWith('residual.residual_add_inplace'))!.calls).toBe(3);
    for (const r of rows) expect(r.totalMs).toBeGreaterThanOrEqual(0); // a tiny kernel can fall within one tick
    expect(rows.reduce((a, r) => a + r.totalMs, 0)).toBeGreaterThan(0);
    expect((await gpu.read(x))[0]).toBe(7);
    prof.detach();
    expect(gpu.profiler).toBeNull();
    for (const t of [x, y, w, out, rstd]) gpu.destroyBuffer(t.buffer);
  });
});
