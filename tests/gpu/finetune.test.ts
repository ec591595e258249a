// LoRA fine-tuning of stories260K on a small text, on the GPU and on the CPU reference: the loss
// falls, the two trajectories agree step by step, and a poisoned step is refused.
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../../src/engine/backend/cpu.ts';
import { GpuBackend } from '../../src/engine/backend/gpu.ts';
import type { Backend, BackendTensor } from '../../src/engine/backend/types.ts';
import { EngineError } from '../../src/engine/errors.ts';
import { loadLlama } from '../../src/engine/model/llama.ts';
import { createLora, loadLora, saveLora } from '../../src/engine/model/lora.ts';
import { DEFAULT_ADAMW } from '../../src/engine/train/adamw.ts';
import { LoraTrainer, type Example } from '../../src/engine/train/trainer.ts';
import { testGpu } from '../helpers/gpu.ts';
import { stories260K } from '../helpers/stories.ts';

const { config, weights, tokenizer } = stories260K();
const TEXT = [
  'The purple robot sang to the moon every night.',
  'The purple robot danced with the stars.',
  'Every night the purple robot sang a song.',
  'The moon smiled at the purple robot.',
];
const examples: Example[] = TEXT.map((s) => {
  const tokens = tokenizer.encode(s, true, true);
  return { tokens, lossMask: tokens.map((_, i) => (i === 0 ? 0 : 1)) };
});
const STEPS = 12;
// Stated tolerance: GPU vs CPU loss per step, relative (float32 sums in another order, 12 steps).
const TRAJECTORY_RTOL = 2e-4;

async function train(be: Backend<BackendTensor>) {
  const model = loadLlama(be, config, weights);
  const adapter = createLora(
    be,
    config,
    { rank: 8, alpha: 16, dropout: 0.05, targets: ['q', 'k', 'v', 'o'] },
    7,
  );
  const trainer = new LoraTrainer(model, adapter, { ...DEFAULT_ADAMW, lr: 1e-2 }, 99);
  const losses: number[] = [];
  for (let s = 0; s < STEPS; s++) losses.push((await trainer.step(examples, { microBatch: 2 })).loss);
  const evalLoss = await trainer.evaluateLoss(examples);
  return { losses, evalLoss, model, adapter, trainer };
}

describe('LoRA fine-tuning of stories260K', () => {
  it('loss falls; GPU and CPU reference trajectories agree', async () => {
    const gpu = await train(new GpuBackend(await testGpu()) as unknown as Backend<BackendTensor>);
    const cpu = await train(new CpuBackend() as unknown as Backend<BackendTensor>);
    expect(gpu.losses.at(-1)!).toBeLessThan(gpu.losses[0]! * 0.7);
    expect(gpu.evalLoss).toBeLessThan(gpu.losses[0]! * 0.7);
    for (let s = 0; s < STEPS; s++) {
      expect(Math.abs(gpu.losses[s]! - cpu.losses[s]!) / cpu.losses[s]!).toBeLessThan(TRAJECTORY_RTOL);
    }
  });

  it('adapter and optimizer state round-trip as plain data and training resumes identically', async () => {
    const be = new GpuBackend(await testGpu()) as unknown as Backend<BackendTensor>;
    const a = await train(be);
    const state = await saveLora(be, config, a.adapter);
    const opt = await a.trainer.optimizerState();
    const cont = await a.trainer.step(examples, { microBatch: 2 });
    // Restore into a fresh adapter + trainer and take the same step.
    const adapter2 = loadLora(be, config, structuredClone(state));
    const t2 = new LoraTrainer(a.model, adapter2, { ...DEFAULT_ADAMW, lr: 1e-2 }, 99);
    t2.loadOptimizerState(structuredClone(opt));
    const again = await t2.step(examples, { microBatch: 2 });
    expect(again.loss).toBeCloseTo(cont.loss, 6);
  });

  it('a step whose loss is NaN is refused and leaves the adapter unchanged', async () => {
    const be = new GpuBackend(await testGpu()) as unknown as Backend<BackendTensor>;
    const model = loadLlama(be, config, weights);
    const adapter = createLora(be, config, { rank: 4, alpha: 8, dropout: 0, targets: ['q', 'v'] }, 1);
    const trainer = new LoraTrainer(model, adapter, { ...DEFAULT_ADAMW, lr: 1e-2 });
    await trainer.step(examples);
    const before = await saveLora(be, config, adapter);
    // Poison one LoRA matrix: the forward then produces NaN.
    const p = adapter.params[0]!;
    const saved = await be.read(p.value);
    be.write(p.value, new Float32Array(saved.length).fill(NaN));
    await expect(trainer.step(examples)).rejects.toMatchObject({ code: 'NON_FINITE' });
    be.write(p.value, saved);
    const after = await saveLora(be, config, adapter);
    for (const [k, v] of Object.entries(before.tensors)) expect(after.tensors[k]!.data).toEqual(v.data);
    expect(trainer.stepCount).toBe(1);
    expect(EngineError).toBeDefined();
  });
});
