// Sequences with the same prompt share its prefill (infer/generate.ts): the prompt runs once, in the
// first such sequence's slot, and `LlamaRunner.copySlot` copies that slot's KV cache to the others.
// m samples of one question then cost one prompt's prefill, and every text is the one an unshared
// run writes — on the GPU and the CPU reference, with f32 and f16 caches, and across the parts of a
// split cache.
import { describe, expect, it } from 'vitest';
import type { Backend, BackendTensor } from '../../src/engine/backend/types.ts';
import { CpuBackend } from '../../src/engine/backend/cpu.ts';
import { GpuBackend } from '../../src/engine/backend/gpu.ts';
import { EngineError } from '../../src/engine/errors.ts';
import { Gpu } from '../../src/engine/gpu/gpu.ts';
import { nodeGpu } from '../../src/engine/gpu/node.ts';
import { generate } from '../../src/engine/infer/generate.ts';
import { LlamaRunner } from '../../src/engine/infer/runner.ts';
import type { KvType } from '../../src/engine/kvcache.ts';
import { loadLlama } from '../../src/engine/model/llama.ts';
import { testGpu } from '../helpers/gpu.ts';
import { stories260K } from '../helpers/stories.ts';

const { config, weights, tokenizer } = stories260K();
const A = tokenizer.encode('Once upon a time, there was a little girl', true, false);
const B = tokenizer.encode('The cat sat', true, false);
// two questions, sampled 3 and 2 times, interleaved; and a prompt the step limit cuts (no output)
const PROMPTS = [A, A, B, A, B];
const STEPS = 40;

async function sample(
  be: Backend<BackendTensor>,
  prompts: readonly (readonly number[])[],
  opts: { kv: KvType; share: boolean; steps?: number; temperature?: number },
) {
  const model = loadLlama(be, config, weights);
  const runner = new LlamaRunner(model, { slots: prompts.length, maxT: 64, maxRows: 8, kv: opts.kv });
  try {
    const r = await generate(runner, tokenizer, prompts, {
      steps: opts.steps ?? STEPS,
      temperature: opts.temperature ?? 0.9,
      topp: 0.95,
      seed: 7,
      sharePrefill: opts.share,
    });
    return {
      tokens: r.tokens,
      texts: r.texts,
      prefillRows: r.prefillRows,
      slotsPerPart: runner.slotsPerPart,
    };
  } finally {
    runner.destroy();
    for (const t of model.tensors) be.destroy(t);
  }
}

const backends = {
  gpu: async () => new GpuBackend(await testGpu()) as unknown as Backend<BackendTensor>,
  cpu: async () => new CpuBackend() as unknown as Backend<BackendTensor>,
};

describe('generate: sequences with one prompt share its prefill', () => {
  for (const [name, make] of Object.entries(backends))
    for (const kv of ['f32', 'f16'] as const) {
      it(`${name}, ${kv} cache: the same tokens as prefilling every sequence, from one prefill per prompt`, async () => {
        const be = await make();
        const shared = await sample(be, PROMPTS, { kv, share: true });
        const apart = await sample(be, PROMPTS, { kv, share: false });
        expect(shared.prefillRows).toBe(A.length + B.length);
        expect(apart.prefillRows).toBe(3 * A.length + 2 * B.length);
        expect(shared.tokens).toEqual(apart.tokens);
        expect(shared.texts).toEqual(apart.texts);
        // the samples of one prompt differ (each its own sampler), so the copies are really decoded
        expect(new Set([0, 1, 3].map((s) => shared.texts[s])).size).toBeGreaterThan(1);
        for (const s of [0, 1, 3]) expect(shared.tokens[s]!.slice(0, A.length - 1)).toEqual(A.slice(1));
      });
    }

  it('greedy: every copy of a prompt writes its first one’s text, on the GPU as on the CPU reference', async () => {
    const gpu = await sample(await backends.gpu(), PROMPTS, { kv: 'f32', share: true, temperature: 0 });
    const cpu = await sample(await backends.cpu(), PROMPTS, { kv: 'f32', share: true, temperature: 0 });
    expect(gpu.tokens).toEqual(cpu.tokens);
    for (const s of [1, 3]) expect(gpu.tokens[s]).toEqual(gpu.tokens[0]);
    expect(gpu.tokens[4]).toEqual(gpu.tokens[2]);
    expect(gpu.tokens[2]).not.toEqual(gpu.tokens[0]);
  });

  it('a cache split by slots: copies go between parts, the tokens are the unsplit run’s', async () => {
    const whole = await sample(await backends.gpu(), PROMPTS, { kv: 'f32', share: false });
    // one slot of a layer: 64 positions × 32 values × 4 B = 8 KiB; parts of 2 slots (the 8-row
    // logits, 8 × 512 × 4 B, fit)
    const small = await Gpu.create(await nodeGpu(), {
      limits: { maxStorageBufferBindingSize: 2 * 8192 + 4 },
    });
    try {
      const split = await sample(new GpuBackend(small) as unknown as Backend<BackendTensor>, PROMPTS, {
        kv: 'f32',
        share: true,
      });
      expect(split.slotsPerPart).toBe(2);
      expect(split.tokens).toEqual(whole.tokens);
    } finally {
      small.destroy();
    }
  });

  it('a prompt cut by the step limit is forced and ends without a prefill output, shared or not', async () => {
    const be = await backends.gpu();
    const steps = A.length - 2; // A does not fit; B does
    const shared = await sample(be, PROMPTS, { kv: 'f32', share: true, steps });
    const apart = await sample(be, PROMPTS, { kv: 'f32', share: false, steps });
    expect(shared.tokens).toEqual(apart.tokens);
    for (const s of [0, 1, 3]) expect(shared.tokens[s]).toEqual(A.slice(1, steps));
  });
});

describe('LlamaRunner.copySlot refuses what is not in the cache', () => {
  it('a slot outside the cache, or more positions than a slot holds: BAD_ARGUMENT, nothing copied', async () => {
    const be = new CpuBackend() as unknown as Backend<BackendTensor>;
    const model = loadLlama(be, config, weights);
    const runner = new LlamaRunner(model, { slots: 2, maxT: 16 });
    try {
      for (const [from, to, n] of [
        [0, [2], 4],
        [-1, [0], 4],
        [0, [1, 2], 4],
        [0, [1], 17],
        [0, [1], 1.5],
      ] as const) {
        let err: unknown;
        try {
          runner.copySlot(from, to, n);
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(EngineError);
        expect((err as EngineError).code).toBe('BAD_ARGUMENT');
      }
      expect(() => runner.copySlot(0, [1], 16)).not.toThrow();
    } finally {
      runner.destroy();
    }
  });
});
