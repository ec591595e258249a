// Per-kernel timing from timestamp queries: every dispatch timed and attributed to its kernel.
import { describe, expect, it } from 'vitest';
import { Profiler } from '../../src/engine/gpu/profiler.ts';
import { addInplace } from '../../src/engine/ops/residual.ts';
import { rmsnormForward } from '../../src/engine/ops/rmsnorm.ts';
import { testGpu } from '../helpers/gpu.ts';

describe('profiler', () => {
  it('times each dispatch and groups by kernel; results stay correct', async () => {
    const gpu = await testGpu();
    // 16 MiB tensors: on a hardware GPU a few-microsecond kernel can fall within one timestamp
    // tick, and four of them summed to 0 on an H100
    const R = 1024,
      C = 4096,
      n = R * C;
    const x = gpu.fromData([R, C], new Float32Array(n).fill(1), 'x');
    const y = gpu.fromData([R, C], new Float32Array(n).fill(2), 'y');
    const w = gpu.fromData([C], new Float32Array(C).fill(1), 'w');
    const out = gpu.tensor([R, C], 'out'),
      rstd = gpu.tensor([R], 'rstd');
    const prof = Profiler.attach(gpu);
    await gpu.checked(async () => {
      for (let i = 0; i < 3; i++) addInplace(gpu, x, y, n);
      rmsnormForward(gpu, out, rstd, x, w, R, C, 1e-5);
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
