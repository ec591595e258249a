// Readback boundaries: one tensor (read) and several in one round trip (readMany), on the GPU and
// on the CPU reference, give back exactly what was written.
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../../src/engine/backend/cpu.ts';
import { GpuBackend } from '../../src/engine/backend/gpu.ts';
import type { Backend, BackendTensor } from '../../src/engine/backend/types.ts';
import { testGpu } from '../helpers/gpu.ts';

async function roundTrip<T extends BackendTensor>(be: Backend<T>): Promise<void> {
  const sizes = [1, 3, 64, 1000, 7];
  const data = sizes.map((n, k) => Float32Array.from({ length: n }, (_, i) => (k + 1) * 1000 + i * 0.5 - 3));
  const ts = sizes.map((n, k) => be.fromData([n], data[k]!, `readback.${k}`));
  const many = await be.readMany(ts);
  expect(many.length).toBe(sizes.length);
  many.forEach((v, k) => expect([...v]).toEqual([...data[k]!]));
  // the same tensors one at a time, and a repeated tensor in one call
  for (const [k, t] of ts.entries()) expect([...(await be.read(t))]).toEqual([...data[k]!]);
  const twice = await be.readMany([ts[2]!, ts[0]!, ts[2]!]);
  expect([...twice[0]!]).toEqual([...data[2]!]);
  expect([...twice[1]!]).toEqual([...data[0]!]);
  expect([...twice[2]!]).toEqual([...data[2]!]);
  expect(await be.readMany([])).toEqual([]);
  for (const t of ts) be.destroy(t);
}

describe('readback', () => {
  it('GPU: read and readMany return what was written', async () => {
    await roundTrip(new GpuBackend(await testGpu()));
  });
  it('CPU reference: the same', async () => {
    await roundTrip(new CpuBackend());
  });
});
