// Whole-model inference on stories260K: llama2.c's exact greedy text on the GPU (Node/Dawn) and on
// the CPU reference backend; GPU logits vs the independent run.c-style reference; batched and
// one-at-a-time greedy identical; seeded sampling gives the same text on GPU and CPU.
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../../src/engine/backend/cpu.ts';
import { GpuBackend } from '../../src/engine/backend/gpu.ts';
import type { Backend, BackendTensor } from '../../src/engine/backend/types.ts';
import { generate } from '../../src/engine/infer/generate.ts';
import { LlamaRunner } from '../../src/engine/infer/runner.ts';
import { loadLlama } from '../../src/engine/model/llama.ts';
import { RefLlama } from '../../src/engine/ref/llama.ts';
import { checkOp } from '../helpers/checkop.ts';
import { testGpu } from '../helpers/gpu.ts';
import { EXPECTED, stories260K } from '../helpers/stories.ts';

const { config, weights, tokenizer } = stories260K();

async function backend(kind: 'gpu' | 'cpu'): Promise<Backend<BackendTensor>> {
  return (kind === 'cpu'
    ? new CpuBackend()
    : new GpuBackend(await testGpu())) as unknown as Backend<BackendTensor>;
}

async function run(
  kind: 'gpu' | 'cpu',
  prompts: string[],
  steps: number,
  temperature: number,
  seed = 42,
  topp = 0.9,
) {
  const be = await backend(kind);
  const model = loadLlama(be, config, weights);
  const runner = new LlamaRunner(model, { slots: prompts.length, maxT: steps });
  const res = await generate(
    runner,
    tokenizer,
    prompts.map((p) => tokenizer.encode(p, true, false)),
    {
      steps,
      temperature,
      topp,
      seed,
      stopTokens: [tokenizer.bos],
    },
  );
  runner.destroy();
  for (const t of model.tensors) be.destroy(t);
  return res.texts;
}

describe('stories260K generation', () => {
  it("GPU: greedy from BOS alone, 200 steps = llama2.c's expected text", async () => {
    expect((await run('gpu', [''], 200, 0))[0]).toBe(EXPECTED.greedy_200);
  });

  it("CPU reference backend: greedy from BOS alone, 200 steps = llama2.c's expected text", async () => {
    expect((await run('cpu', [''], 200, 0))[0]).toBe(EXPECTED.greedy_200);
  });

  it("GPU: top-p 0.9, temperature 1, seed 133742 = llama2.c's documented sample", async () => {
    expect((await run('gpu', [''], 256, 1.0, 133742, 0.9))[0]).toBe(EXPECTED.topp09_seed133742_256);
  });

  it('GPU logits equal the run.c-style reference over a prompt and a greedy continuation', async () => {
    const be = await backend('gpu');
    const model = loadLlama(be, config, weights);
    const runner = new LlamaRunner(model, { slots: 1, maxT: 64 });
    const ref = new RefLlama(config, weights);
    const tokens = tokenizer.encode('Lily and Tom went to the park', true, false);
    const rows = tokens.map((token, pos) => ({ slot: 0, pos, token }));
    const logits = await runner.forward(
      rows,
      rows.map((_, i) => i),
    );
    for (let pos = 0; pos < tokens.length; pos++) {
      const expected = ref.forward(tokens[pos]!, pos);
      checkOp(
        'model_logits',
        logits.subarray(pos * config.vocabSize, (pos + 1) * config.vocabSize),
        expected,
      );
    }
    runner.destroy();
  });

  it('batched greedy (4 prompts of different lengths) = one at a time, token for token', async () => {
    const prompts = ['', 'Once upon a time', 'Tom had a red', 'The little dog was very happy and'];
    const batched = await run('gpu', prompts, 80, 0);
    for (let i = 0; i < prompts.length; i++) {
      expect(batched[i]).toBe((await run('gpu', [prompts[i]!], 80, 0))[0]);
    }
    expect(batched[1]!.startsWith('Once upon a time')).toBe(true);
  });

  it('seeded sampling: same seed, same texts on GPU and CPU; another seed differs', async () => {
    const prompts = ['Once upon a time', 'Once upon a time', 'Sam'];
    const gpu = await run('gpu', prompts, 60, 0.8, 7);
    const cpu = await run('cpu', prompts, 60, 0.8, 7);
    expect(gpu).toEqual(cpu);
    expect(gpu[0]).not.toBe(gpu[1]); // each sequence has its own RNG stream
    expect(await run('gpu', prompts, 60, 0.8, 8)).not.toEqual(gpu);
    expect(await run('gpu', prompts, 60, 0.8, 7)).toEqual(gpu);
  });
});
