// Bind groups made once and reused (src/engine/gpu/bindgroups.ts): the same dispatches in the next
// submit take every group from the cache and compute the same; a destroyed buffer's groups go with
// it; a full cache starts over. (Gpu turns the cache on for hardware adapters; these tests turn it
// on for SwiftShader too.)
import { describe, expect, it } from 'vitest';
import { BindGroupCache } from '../../src/engine/gpu/bindgroups.ts';
import { addInplace } from '../../src/engine/ops/residual.ts';
import { testGpu } from '../helpers/gpu.ts';

describe('bind-group cache', () => {
  it('a repeated step hits for every dispatch; results as without a cache', async () => {
    const gpu = await testGpu();
    const was = gpu.bindGroups.enabled;
    gpu.bindGroups.enabled = true;
    const x = gpu.fromData([8], new Float32Array(8).fill(1), 'x');
    const y = gpu.fromData([8], new Float32Array(8).fill(2), 'y');
    const z = gpu.fromData([8], new Float32Array(8).fill(3), 'z');
    const step = async () => {
      addInplace(gpu, x, y, 8); // slot 0: x += y
      addInplace(gpu, x, z, 8); // slot 1: x += z
      addInplace(gpu, y, z, 8); // slot 2: y += z
      await gpu.sync();
    };
    await step();
    const { hits, misses } = gpu.bindGroups;
    await step();
    expect(gpu.bindGroups.hits - hits).toBe(3);
    expect(gpu.bindGroups.misses - misses).toBe(0);
    // x = 1 + 2 + 3 = 6, y = 5; then x = 6 + 5 + 3 = 14, y = 8
    expect([...(await gpu.read(x))]).toEqual(new Array(8).fill(14));
    expect([...(await gpu.read(y))]).toEqual(new Array(8).fill(8));
    for (const t of [x, y, z]) gpu.destroyBuffer(t.buffer);
    gpu.bindGroups.enabled = was;
  });

  it('destroyBuffer drops the groups that bind the buffer; a new buffer in that place works', async () => {
    const gpu = await testGpu();
    const was = gpu.bindGroups.enabled;
    gpu.bindGroups.enabled = true;
    const x = gpu.fromData([4], new Float32Array(4).fill(1), 'x');
    let y = gpu.fromData([4], new Float32Array(4).fill(2), 'y');
    addInplace(gpu, x, y, 4);
    await gpu.sync();
    const before = gpu.bindGroups.size;
    gpu.destroyBuffer(y.buffer);
    expect(gpu.bindGroups.size).toBe(before - 1);
    y = gpu.fromData([4], new Float32Array(4).fill(5), 'y2');
    addInplace(gpu, x, y, 4);
    expect([...(await gpu.read(x))]).toEqual([8, 8, 8, 8]);
    for (const t of [x, y]) gpu.destroyBuffer(t.buffer);
    gpu.bindGroups.enabled = was;
  });

  it('a full cache is cleared before it grows past its size', async () => {
    const gpu = await testGpu();
    const device = gpu.device;
    const cache = new BindGroupCache(true, 2);
    const [x, y, z] = ['x', 'y', 'z'].map((l) => gpu.fromData([4], new Float32Array(4), l));
    const module = device.createShaderModule({
      code: '@group(0) @binding(0) var<storage, read_write> a: array<f32>; @compute @workgroup_size(1) fn main() { a[0] = 1.0; }',
    });
    const p = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
    const g1 = cache.get(device, p, 'x', x!.buffer, null, [x!.buffer]);
    expect(cache.get(device, p, 'x', x!.buffer, null, [x!.buffer])).toBe(g1);
    cache.get(device, p, 'y', x!.buffer, null, [y!.buffer]);
    expect(cache.size).toBe(2);
    cache.get(device, p, 'z', x!.buffer, null, [z!.buffer]); // a third key: cleared first
    expect(cache.size).toBe(1);
    expect(cache.get(device, p, 'x', x!.buffer, null, [x!.buffer])).not.toBe(g1); // made again
    for (const t of [x!, y!, z!]) gpu.destroyBuffer(t.buffer);
  });
});
