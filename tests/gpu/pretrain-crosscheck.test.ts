// Our trainer against PyTorch's pre-training of the built-in student (tools/pretrain_student.py):
// from the same initial weights (randomLlamaWeights(config, initSeed)) and the same batches, full
// fine-tuning with AdamW + clipping reproduces PyTorch's first 20 losses and gradient norms and the
// weights after step 20 (tests/fixtures/pretrain-50.json, which records 50 steps: a full-model step
// of 32 sequences takes seconds on a software GPU; `after` comes from tools/pretrain_fixture_after.py,
// which replays the recorded run bit-for-bit).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GpuBackend } from '../../src/engine/backend/gpu.ts';
import { CharTokenizer } from '../../src/engine/io/chartok.ts';
import type { LlamaConfig } from '../../src/engine/model/config.ts';
import { fullParams } from '../../src/engine/model/full.ts';
import { loadLlama } from '../../src/engine/model/llama.ts';
import { randomLlamaWeights } from '../../src/engine/model/random.ts';
import type { AdamWConfig } from '../../src/engine/train/adamw.ts';
import { likelihoodObjective, Trainer, type Example } from '../../src/engine/train/trainer.ts';
import { testGpu } from '../helpers/gpu.ts';

interface Fixture {
  config: LlamaConfig;
  initSeed: number;
  chars: string;
  adamw: AdamWConfig;
  batches: string[][];
  losses: number[];
  gradNorms: number[];
  lrs: number[];
  /** step → weight name → [L2 norm, first element] after that step */
  after: Record<string, Record<string, [number, number]>>;
}

const fx = JSON.parse(readFileSync('tests/fixtures/pretrain-50.json', 'utf8')) as Fixture;
const STEPS = 20;

describe(`pre-training cross-check: our trainer vs PyTorch, ${STEPS} steps`, () => {
  it('same losses, gradient norms and final weights', async () => {
    const be = new GpuBackend(await testGpu());
    const model = loadLlama(be, fx.config, randomLlamaWeights(fx.config, fx.initSeed));
    const full = fullParams(model);
    const trainer = new Trainer(
      be,
      full.params,
      fx.adamw,
      likelihoodObjective(model, () => null, full.trainable),
    );
    const tok = new CharTokenizer(fx.chars);
    const losses: number[] = [];
    const norms: number[] = [];
    for (let s = 0; s < STEPS; s++) {
      const examples: Example[] = fx.batches[s]!.map((text) => {
        const tokens = tok.encode(text, true, true);
        return { tokens, lossMask: tokens.map((_, t) => (t === 0 ? 0 : 1)) };
      });
      const r = await trainer.step(examples, { lr: fx.lrs[s]! });
      losses.push(r.loss);
      norms.push(r.gradNorm);
    }
    // float32 on both sides, reordered sums: errors grow slowly over the updates
    for (let s = 0; s < STEPS; s++) {
      expect(Math.abs(losses[s]! - fx.losses[s]!) / fx.losses[s]!, `loss at step ${s + 1}`).toBeLessThan(
        2e-3,
      );
      expect(
        Math.abs(norms[s]! - fx.gradNorms[s]!) / fx.gradNorms[s]!,
        `grad norm at step ${s + 1}`,
      ).toBeLessThan(1e-2);
    }
    expect(Math.abs(losses[0]! - fx.losses[0]!) / fx.losses[0]!).toBeLessThan(1e-5); // before any update
    const after = fx.after[String(STEPS)];
    expect(after, `the fixture's weights after step ${STEPS}`).toBeDefined();
    for (const [name, [norm, first]] of Object.entries(after!)) {
      // per-layer parameters are concatenated over layers in the fixture: compare the sum of squares
      const parts = full.params.filter((p) => p.name === name || p.name.endsWith(`.${name}`));
      expect(parts.length, name).toBeGreaterThan(0);
      let ss = 0;
      let f0 = NaN;
      for (const [i, p] of parts.entries()) {
        const v = await be.read(p.value);
        if (i === 0) f0 = v[0]!;
        for (const x of v) ss += x * x;
      }
      expect(Math.abs(Math.sqrt(ss) - norm) / norm, `‖${name}‖ after ${STEPS} steps`).toBeLessThan(1e-3);
      expect(f0, `${name}[0] after ${STEPS} steps`).toBeCloseTo(first, 3);
    }
    trainer.destroy();
    full.destroy();
  }, 900_000); // full-model steps of 32 sequences: about a minute on a software GPU
});
