// Every training stage of the method trains a few steps on a tiny model and its loss falls; the
// stages chain (neg → nat → nce), refuse unusable data with a clear message, and cancel cleanly.
import { beforeAll, describe, expect, it } from 'vitest';
import { GpuBackend } from '../../src/engine/backend/gpu.ts';
import type { LoraTarget } from '../../src/engine/model/llama.ts';
import { loadLlama } from '../../src/engine/model/llama.ts';
import { randomLlamaWeights } from '../../src/engine/model/random.ts';
import { STAGES, type StageName } from '../../src/method/stages/config.ts';
import {
  runStage,
  type StageAdapters,
  type StageCheckpoint,
  type StageData,
  type StageResult,
  type TrainItem,
} from '../../src/method/stages/stages.ts';
import { testGpu } from '../helpers/gpu.ts';
import { arithCase, tinyConfig, tinyTok } from '../helpers/tiny-arith.ts';

const tok = tinyTok;
const config = tinyConfig;

const data = { pos: [] as TrainItem[], neg: [] as TrainItem[] };
for (let i = 0; i < 12; i++) {
  const { question, pos, neg } = arithCase(i);
  data.pos.push({ question, rationale: pos });
  data.neg.push({ question, rationale: neg });
}

const quick = {
  steps: 8,
  batchSize: 4,
  lr: 1e-2,
  warmup: 0,
  targets: ['q', 'v', 'o', 'gate', 'up', 'down'],
} as const;

async function setup() {
  const be = new GpuBackend(await testGpu());
  const model = loadLlama(be, config, randomLlamaWeights(config, 3));
  return { be, model };
}

describe('method stages on a tiny model', () => {
  let model: Awaited<ReturnType<typeof setup>>['model'];
  const results: Partial<Record<StageName, StageResult>> = {};
  beforeAll(async () => {
    model = (await setup()).model;
  });
  const run = async (stage: StageName, inputs: StageAdapters = {}) => {
    const r = await runStage({
      stage,
      model,
      tokenizer: tok,
      data,
      config: { ...quick, targets: [...quick.targets] },
      inputs,
    });
    results[stage] = r;
    expect(r.losses).toHaveLength(quick.steps);
    expect(r.losses.every(Number.isFinite)).toBe(true);
    // the mean of the last three steps is below the first (batches differ from step to step)
    const l = r.losses;
    const tail = (l.at(-1)! + l.at(-2)! + l.at(-3)!) / 3;
    expect(tail, `${stage}: ${l.map((x) => x.toFixed(3)).join(' ')}`).toBeLessThan(l[0]!);
    return r;
  };
  for (const stage of ['kd', 'neg', 'mix', 'nt', 'ul', 'cl', 'rank'] as const) {
    it(`${stage} lowers its loss`, async () => {
      await run(stage);
    });
  }
  it('linmix and nat (on the negative LoRA), then nce (on NAT) lower their losses', async () => {
    const neg = results.neg!.adapters.lora!;
    await run('linmix', { neg });
    const nat = await run('nat', { neg });
    // a fresh NAT unit (W_V2 = 0, B_pos = 0) is the base model: its first loss is KD's first loss
    expect(nat.losses[0]).toBeCloseTo(results.kd!.losses[0]!, 4);
    expect(nat.history['alpha']).toHaveLength(quick.steps);
    expect((nat.history['alpha']![0] as number[]).length).toBe(config.nLayers);
    expect(nat.adapters.neg).toEqual(neg); // LoRA_neg frozen
    const nce = await run('nce', nat.adapters);
    expect(nce.history['beta']![0]).toHaveLength(quick.batchSize);
    expect(Object.keys(results).sort()).toEqual([...STAGES].sort());
  });

  it('refuses data it cannot learn from, with a message that says why', async () => {
    const { model } = await setup();
    const noNeg: StageData = { pos: data.pos, neg: [] };
    await expect(runStage({ stage: 'neg', model, tokenizer: tok, data: noNeg })).rejects.toThrow(
      /D_neg is empty/,
    );
    await expect(runStage({ stage: 'rank', model, tokenizer: tok, data: noNeg })).rejects.toThrow(/has both/);
    await expect(runStage({ stage: 'nat', model, tokenizer: tok, data })).rejects.toThrow(/negative LoRA/);
    await expect(
      runStage({ stage: 'kd', model, tokenizer: tok, data: { pos: [], neg: [] } }),
    ).rejects.toThrow(/D_pos is empty/);
  });

  it('resumes from a checkpoint exactly where it stopped (same losses as an unbroken run)', async () => {
    const { model } = await setup();
    for (const stage of ['kd', 'rank'] as const) {
      const cfg = { ...quick, targets: ['q', 'v'] as LoraTarget[], steps: 6, dropout: 0.1 };
      const checkpoints: StageCheckpoint[] = [];
      const whole = await runStage({
        stage,
        model,
        tokenizer: tok,
        data,
        config: cfg,
        checkpointEvery: 3,
        onCheckpoint: (c) => void checkpoints.push(structuredClone(c)),
      });
      expect(checkpoints.map((c) => c.step)).toEqual([3, 6]);
      const resumed = await runStage({ stage, model, tokenizer: tok, data, resume: checkpoints[0]! });
      expect(resumed.losses.slice(0, 3)).toEqual(whole.losses.slice(0, 3));
      for (let i = 3; i < 6; i++) expect(resumed.losses[i]).toBeCloseTo(whole.losses[i]!, 6);
    }
  });

  it('waits at the gate between steps (pause) and goes on when it opens', async () => {
    const { model } = await setup();
    let open!: () => void;
    let paused = true;
    const steps: number[] = [];
    const run = runStage({
      stage: 'kd',
      model,
      tokenizer: tok,
      data,
      config: { ...quick, targets: ['q', 'v'], steps: 3 },
      gate: () => (paused ? new Promise<void>((r) => (open = r)) : Promise.resolve()),
      onProgress: (p) => steps.push(p.step),
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(steps).toEqual([]);
    paused = false;
    open();
    const r = await run;
    expect(steps).toEqual([1, 2, 3]);
    expect(r.cancelled).toBe(false);
  });

  it('cancels between steps and returns the adapter so far', async () => {
    const { model } = await setup();
    const ac = new AbortController();
    const r = await runStage({
      stage: 'kd',
      model,
      tokenizer: tok,
      data,
      config: { ...quick, targets: ['q', 'v'], steps: 50 },
      signal: ac.signal,
      onProgress: (p) => {
        if (p.step === 3) ac.abort();
      },
    });
    expect(r.cancelled).toBe(true);
    expect(r.losses).toHaveLength(3);
    expect(Object.keys(r.adapters.lora!.tensors)).toHaveLength(2 * config.nLayers * 2);
  });
});
