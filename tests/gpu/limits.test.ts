// Bad input on the GPU side: a model or KV cache beyond the device's limits gives a typed error a
// student understands, and nothing stays allocated; a lost device becomes a state and an error.
import { describe, expect, it } from 'vitest';
import { GpuBackend } from '../../src/engine/backend/gpu.ts';
import { EngineError } from '../../src/engine/errors.ts';
import { Gpu } from '../../src/engine/gpu/gpu.ts';
import { nodeGpu } from '../../src/engine/gpu/node.ts';
import { LlamaRunner } from '../../src/engine/infer/runner.ts';
import { loadLlama } from '../../src/engine/model/llama.ts';
import { stories260K } from '../helpers/stories.ts';

const { config, weights } = stories260K();

async function expectEngineError(p: () => unknown, code: string, message: RegExp): Promise<void> {
  try {
    await p();
  } catch (e) {
    expect(e).toBeInstanceOf(EngineError);
    expect((e as EngineError).code).toBe(code);
    expect((e as EngineError).message).toMatch(message);
    return;
  }
  throw new Error(`expected EngineError ${code}`);
}

describe('device limits and lost devices', () => {
  it('a model with a row beyond the binding limit is refused before anything is allocated', async () => {
    // Rehearse a tiny GPU: 128 B per binding. A weight larger than a binding is split by rows
    // (tests/gpu/split-weights.test.ts), but one row of stories260K's embedding is 256 B.
    const gpu = await Gpu.create(await nodeGpu(), { limits: { maxStorageBufferBindingSize: 128 } });
    const before = gpu.liveBuffers;
    await expectEngineError(
      () => loadLlama(new GpuBackend(gpu), config, weights),
      'LIMIT_EXCEEDED',
      /One row of .*tok_embeddings.*256 B.*128 B.*smaller model/,
    );
    expect(gpu.liveBuffers).toEqual(before);
    gpu.destroy();
  });

  it('a KV cache whose one sequence is beyond a binding is refused with advice, nothing allocated', async () => {
    // A layer's cache larger than a binding is split between sequences (tests/gpu/split-kv.test.ts);
    // one sequence of 512 positions is 64 KiB in f32, over a 48 KiB binding; in f16, 32 KiB fits.
    const gpu = await Gpu.create(await nodeGpu(), { limits: { maxStorageBufferBindingSize: 48 * 1024 } });
    try {
      const be = new GpuBackend(gpu);
      const model = loadLlama(be, config, weights);
      const before = gpu.liveBuffers;
      await expectEngineError(
        () => new LlamaRunner(model, { slots: 2, maxT: 512, maxRows: 2 }),
        'LIMIT_EXCEEDED',
        /^One sequence's f32 KV cache of a layer \(512 positions\) needs 64\.0 KiB, but this GPU binds at most 48\.0 KiB per buffer and a cache is split only between sequences: use a shorter context, or an f16 KV cache \(half the size\)\.$/,
      );
      expect(gpu.liveBuffers).toEqual(before);
      const f16 = new LlamaRunner(model, { slots: 2, maxT: 512, maxRows: 2, kv: 'f16' });
      expect(f16.slotsPerPart).toBe(1); // two parts of one sequence
      f16.destroy();
      for (const t of model.tensors) be.destroy(t);
    } finally {
      gpu.destroy();
    }
  });

  it('a lost device turns into state "lost" and a DEVICE_LOST error on the next call', async () => {
    const gpu = await Gpu.create(await nodeGpu());
    const lost = new Promise<string>((resolve) => gpu.onLost(resolve));
    const t = gpu.tensor([4], 'x');
    gpu.device.destroy(); // what a driver reset looks like from here
    await lost;
    expect(gpu.state).toBe('lost');
    await expectEngineError(() => gpu.read(t), 'DEVICE_LOST', /device was lost.*Reload/);
    expect(() => gpu.tensor([4], 'y')).toThrow(EngineError);
  });

  it('work the GPU refused outside any error scope: the next readback throws VALIDATION, once', async () => {
    const gpu = await Gpu.create(await nodeGpu());
    try {
      const t = gpu.fromData([8], new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]), 'x');
      // WebGPU copies no buffer into itself: the command buffer is invalid and nothing runs,
      // so the readback that shares it would return stale bytes as if they were the result
      gpu.copy(t, t, 16, 0, 16);
      await expectEngineError(() => gpu.read(t), 'VALIDATION', /refused work.*cannot be trusted/);
      // reported once: the device works on
      expect(Array.from(await gpu.read(t))).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      gpu.copy(t, t, 16, 0, 16);
      await expectEngineError(() => gpu.sync(), 'VALIDATION', /same buffer/);
    } finally {
      gpu.destroy();
    }
  });
});
