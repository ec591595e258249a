// Activation recompute (gradient checkpointing, ad.checkpoint): every training objective gives the
// same loss, figures and gradients — the same bits — with and without it, on the GPU and on the
// CPU backend; AdamW steps give the same losses; and the peak of live tape memory falls to what the
// planner (plan/evaluate.ts) figures for a recompute step.
import { beforeAll, describe, expect, it } from 'vitest';
import { Tape, type Param } from '../../src/engine/autograd/tape.ts';
import { CpuBackend } from '../../src/engine/backend/cpu.ts';
import { GpuBackend } from '../../src/engine/backend/gpu.ts';
import type { Backend, BackendTensor } from '../../src/engine/backend/types.ts';
import type { Gpu } from '../../src/engine/gpu/gpu.ts';
import { numel } from '../../src/engine/gpu/tensor.ts';
import type { LlamaConfig } from '../../src/engine/model/config.ts';
import { loadLlama, type LlamaModel, type LoraTarget } from '../../src/engine/model/llama.ts';
import { createLora, type LoraAdapter } from '../../src/engine/model/lora.ts';
import { createNatUnit, type NatUnit } from '../../src/engine/model/nat.ts';
import { randomLlamaWeights } from '../../src/engine/model/random.ts';
import { createRankerHead, type RankerHead } from '../../src/engine/model/ranker.ts';
import { planMemory, type TrainVariant } from '../../src/engine/plan.ts';
import { DEFAULT_ADAMW } from '../../src/engine/train/adamw.ts';
import { loraHook } from '../../src/engine/train/forward.ts';
import { natHook, type NatAlphas } from '../../src/engine/train/nat.ts';
import {
  contrastiveObjective,
  negativeObjective,
  nceObjective,
  rankerObjective,
  type PairExample,
  type SignedExample,
} from '../../src/engine/train/objectives.ts';
import {
  likelihoodObjective,
  LoraTrainer,
  type Example,
  type Objective,
} from '../../src/engine/train/trainer.ts';
import { linearMixHook } from '../../src/engine/train/linmix.ts';
import { runStage, type TrainItem } from '../../src/method/stages/stages.ts';
import { randArray } from '../helpers/fd.ts';
import { testGpu } from '../helpers/gpu.ts';
import { arithCase, tinyConfig, tinyTok } from '../helpers/tiny-arith.ts';

// A small GQA LLaMA with four layers (the peak test needs more than the head and one layer).
const config: LlamaConfig = {
  dim: 32,
  hiddenDim: 64,
  nLayers: 4,
  nHeads: 4,
  nKvHeads: 2,
  vocabSize: 40,
  maxSeqLen: 32,
  ropeTheta: 10000,
  normEps: 1e-5,
  sharedClassifier: false,
};
const TARGETS: LoraTarget[] = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'];
const LORA = { rank: 4, alpha: 8, dropout: 0.25, targets: TARGETS };

/** Sequence s of `len` tokens; the loss starts after a 3-token "question". */
const ex = (s: number, len: number): Example => ({
  tokens: Array.from({ length: len }, (_, i) => 1 + ((i * 7 + s * 13 + ((i * s) % 5)) % 39)),
  lossMask: Array.from({ length: len }, (_, i) => (i >= 3 ? 1 : 0)),
});
// unequal lengths: padded rows and masked positions in every batch
const EXAMPLES = [ex(1, 14), ex(2, 11), ex(3, 9)];

/** Overwrites every parameter with values in ±0.3 (a fresh LoRA's B and NAT's wv2 are zero). */
function randomize<T extends BackendTensor>(be: Backend<T>, params: readonly Param<T>[], seed: number): void {
  params.forEach((p, i) =>
    be.write(p.value, randArray(Float32Array, numel(p.value.shape), seed + i, -0.3, 0.3)),
  );
}

interface World<T extends BackendTensor> {
  be: Backend<T>;
  model: LlamaModel<T>;
  lora: LoraAdapter<T>;
  neg: LoraAdapter<T>;
  student: LoraAdapter<T>;
  unit: NatUnit<T>;
  head: RankerHead<T>;
}

/**
 * The models and adapters; `frozen` gives the frozen LoRAs (the negative one, and NCE's NAT
 * positive one: `lora` when `student` is what trains) another rank.
 */
function world<T extends BackendTensor>(be: Backend<T>, frozen?: { rank: number; pos: boolean }): World<T> {
  const model = loadLlama(be, config, randomLlamaWeights(config, 11));
  const other = frozen ? { ...LORA, rank: frozen.rank } : LORA;
  const lora = createLora(be, config, frozen?.pos ? other : LORA, 21);
  const neg = createLora(be, config, other, 22);
  const student = createLora(be, config, LORA, 25);
  const unit = createNatUnit(be, config, { du: 8, targets: TARGETS }, 23);
  const head = createRankerHead(be, config.dim, 24);
  randomize(be, lora.params, 100);
  randomize(be, neg.params, 200);
  randomize(be, student.params, 500);
  randomize(be, unit.params, 300);
  return { be, model, lora, neg, student, unit, head };
}

interface GradRun {
  loss: number;
  metrics: Record<string, number | number[]>;
  grads: Float32Array[];
  /** What `probe` read after the backward, before the tape was released. */
  probed: Float32Array[];
}

/** One micro-batch: objective forward, backward; the loss and every parameter's gradient. */
async function gradRun<T extends BackendTensor, E>(
  be: Backend<T>,
  params: readonly Param<T>[],
  objective: Objective<T, E>,
  examples: readonly E[],
  recompute: boolean,
  probe: () => T[] = () => [],
): Promise<GradRun> {
  for (const p of params) be.zero(p.grad);
  const tape = new Tape(be);
  try {
    const r = await objective.run(tape, examples, {
      norm: objective.prepare(examples),
      seed: 4242,
      training: true,
      recompute,
    });
    tape.backward();
    const probed = await be.readMany(probe());
    return {
      loss: r.loss,
      metrics: r.metrics ?? {},
      grads: await be.readMany(params.map((p) => p.grad)),
      probed,
    };
  } finally {
    tape.release();
  }
}

/** Index of the first element whose bits differ (NaN payloads aside), or -1. */
function firstDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return 0;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}

/** Same loss, metrics and gradients to the bit, and every gradient non-zero (so the check can fail). */
function expectSame(name: string, params: readonly Param<BackendTensor>[], off: GradRun, on: GradRun): void {
  expect(Number.isFinite(off.loss)).toBe(true);
  expect(on.loss, `${name}: loss`).toBe(off.loss);
  expect(on.metrics, `${name}: metrics`).toEqual(off.metrics);
  expect(on.grads).toHaveLength(params.length);
  params.forEach((p, i) => {
    const a = off.grads[i]!,
      b = on.grads[i]!;
    expect(
      a.some((v) => v !== 0),
      `${name}: ${p.name} has a gradient`,
    ).toBe(true);
    const d = firstDiff(a, b);
    expect(d, `${name}: ${p.name}[${d}] ${a[d]} vs ${b[d]} with recompute`).toBe(-1);
  });
  expect(on.probed).toHaveLength(off.probed.length);
  off.probed.forEach((a, i) => expect(firstDiff(a, on.probed[i]!), `${name}: probe ${i}`).toBe(-1));
}

async function both<T extends BackendTensor, E>(
  name: string,
  w: World<T>,
  params: readonly Param<T>[],
  objective: (alphas: NatAlphas<T>[]) => Objective<T, E>,
  examples: readonly E[],
): Promise<{ off: GradRun; on: GradRun }> {
  const run = async (recompute: boolean) => {
    const alphas: NatAlphas<T>[] = [];
    const r = await gradRun(w.be, params, objective(alphas), examples, recompute, () =>
      alphas.map((a) => a.alpha),
    );
    return r;
  };
  const off = await run(false);
  const on = await run(true);
  expectSame(name, params, off, on);
  return { off, on };
}

const signed: SignedExample[] = [
  { ...ex(4, 13), negative: false },
  { ...ex(5, 10), negative: true },
  { ...ex(6, 12), negative: false },
];
const pairs: PairExample[] = [
  { pos: ex(7, 12), neg: ex(8, 10) },
  { pos: ex(9, 9), neg: ex(10, 13) },
];

/** Every objective, with and without recompute, on one backend. */
function objectiveSuite<T extends BackendTensor>(make: () => Promise<World<T>>): void {
  let w: World<T>;
  beforeAll(async () => {
    w = await make();
  });

  it('LoRA on all seven targets, dropout 0.25: the loss and every A and B gradient', async () => {
    await both(
      'kd',
      w,
      w.lora.params,
      () => likelihoodObjective(w.model, (tape, s, tr) => loraHook(tape, w.lora, s, tr)),
      EXAMPLES,
    );
  });

  it('NAT (positive LoRA + unit trained, negative LoRA frozen): loss, α and every gradient', async () => {
    const params = [...w.lora.params, ...w.unit.params];
    const { off, on } = await both(
      'nat',
      w,
      params,
      (alphas) =>
        likelihoodObjective(w.model, (tape, s, tr) =>
          natHook(tape, w.lora, w.neg, w.unit, { trainable: true, training: tr, seed: s }, alphas),
        ),
      EXAMPLES,
    );
    // one α per layer and site of the forward, none from the re-runs
    expect(off.probed).toHaveLength(config.nLayers * TARGETS.length);
    expect(on.probed).toHaveLength(config.nLayers * TARGETS.length);
    expect(off.probed[0]!.some((a) => a !== 0)).toBe(true);
  });

  it('NCE (frozen NAT teacher and negative model, student LoRA): loss, β and the gradients', async () => {
    const { off } = await both(
      'nce',
      w,
      w.student.params,
      () =>
        nceObjective(w.model, {
          teacher: (tape) =>
            natHook(tape, w.lora, w.neg, w.unit, { trainable: false, training: false, seed: 0 }),
          negative: (tape) => loraHook(tape, w.neg, 0, false, true),
          student: (tape, s, tr) => loraHook(tape, w.student, s, tr),
        }),
      EXAMPLES,
    );
    expect(off.metrics['beta']).toHaveLength(EXAMPLES.length);
  });

  it('the ranker (rank LoRA + head on the mean-pooled hidden states)', async () => {
    await both(
      'rank',
      w,
      [...w.lora.params, ...w.head.params],
      () => rankerObjective(w.model, w.head, (tape, s, tr) => loraHook(tape, w.lora, s, tr)),
      pairs,
    );
  });

  it('the linear-mix ablation (positive LoRA trained, negative frozen)', async () => {
    await both(
      'linmix',
      w,
      w.lora.params,
      () => likelihoodObjective(w.model, (tape, s, tr) => linearMixHook(tape, w.lora, w.neg, s, tr)),
      EXAMPLES,
    );
  });

  it('the baselines NT, UL and CL', async () => {
    await both(
      'nt',
      w,
      w.lora.params,
      () => negativeObjective(w.model, (tape, s, tr) => loraHook(tape, w.lora, s, tr), 'nt'),
      signed,
    );
    await both(
      'ul',
      w,
      w.lora.params,
      () => negativeObjective(w.model, (tape, s, tr) => loraHook(tape, w.lora, s, tr), 'ul'),
      signed,
    );
    await both(
      'cl',
      w,
      w.lora.params,
      () => contrastiveObjective(w.model, (tape, s, tr) => loraHook(tape, w.lora, s, tr)),
      pairs,
    );
  });

  it('5 AdamW steps of a LoraTrainer: the same losses and the same adapter', async () => {
    const run = async (recompute: boolean) => {
      const lora = createLora(w.be, config, LORA, 31);
      randomize(w.be, lora.params, 400);
      const trainer = new LoraTrainer(w.model, lora, { ...DEFAULT_ADAMW, lr: 1e-2 }, 7, { recompute });
      const losses: number[] = [];
      for (let s = 0; s < 5; s++) losses.push((await trainer.step(EXAMPLES, { microBatch: 2 })).loss);
      const values = await w.be.readMany(lora.params.map((p) => p.value));
      trainer.destroy();
      for (const p of lora.params) {
        w.be.destroy(p.value);
        w.be.destroy(p.grad);
      }
      return { losses, values };
    };
    const off = await run(false);
    const on = await run(true);
    expect(off.losses[4]).toBeLessThan(off.losses[0]!);
    expect(on.losses).toEqual(off.losses);
    off.values.forEach((v, i) => expect(firstDiff(v, on.values[i]!)).toBe(-1));
  });
}

describe('recompute on the CPU backend: the same bits', () => {
  objectiveSuite(() => Promise.resolve(world(new CpuBackend())));
});

describe('recompute on the GPU: the same bits', () => {
  objectiveSuite(async () => world(new GpuBackend(await testGpu())));
});

/** Counts the bytes of live scratch tensors (allocated, not yet released) and their peak. */
function liveBytes<T extends BackendTensor>(be: Backend<T>) {
  const live = new Map<T, number>();
  const m = { bytes: 0, peak: 0 };
  const scratch = be.scratch.bind(be),
    zeros = be.zeros.bind(be),
    release = be.release.bind(be);
  const track = (t: T): T => {
    const n = numel(t.shape) * 4;
    live.set(t, n);
    m.bytes += n;
    m.peak = Math.max(m.peak, m.bytes);
    return t;
  };
  be.scratch = (shape, label, dtype) => track(scratch(shape, label, dtype));
  be.zeros = (shape, label, dtype) => track(zeros(shape, label, dtype));
  be.release = (t) => {
    const n = live.get(t);
    if (n !== undefined) {
      live.delete(t);
      m.bytes -= n;
    }
    release(t);
  };
  return m;
}

/** The planner on the peak tests' step: 2 × 12 tokens of this model, LORA, f32 weights. */
const planStep = (recompute: boolean, variant: TrainVariant = { kind: 'lora' }) =>
  planMemory({
    kind: 'training',
    config,
    weights: { matrices: 'f32' },
    batch: 2,
    seq: 12,
    lora: LORA,
    recompute,
    variant,
    limits: { maxBufferSize: 2 ** 30, maxStorageBufferBindingSize: 2 ** 30, memoryBudget: 2 ** 30 },
  });

describe('peak memory of a LoRA step, measured and planned', () => {
  const B = 2,
    T = 12;
  const batch = [ex(11, T + 1), ex(12, T + 1)];
  const plan = (recompute: boolean) => planStep(recompute);

  async function peak<T extends BackendTensor>(be: Backend<T>, recompute: boolean, gpu?: Gpu) {
    const m = liveBytes(be);
    const model = loadLlama(be, config, randomLlamaWeights(config, 11));
    const lora = createLora(be, config, LORA, 41);
    const trainer = new LoraTrainer(model, lora, DEFAULT_ADAMW, 5, { recompute });
    gpu?.pool.trim();
    const pooled0 = gpu ? gpu.pool.bytesLive + gpu.pool.bytesFree : 0;
    m.peak = m.bytes;
    const before = m.bytes;
    await trainer.step(batch);
    expect(m.bytes).toBe(before); // the step gave back everything it took
    const pooled = gpu ? gpu.pool.bytesLive + gpu.pool.bytesFree - pooled0 : 0;
    trainer.destroy();
    return { peak: m.peak - before, pooled };
  }

  /** The planner's tape figures: activations, logits, recompute buffers and the batch inputs. */
  const planned = (recompute: boolean) => {
    const p = plan(recompute);
    return {
      tape: p.items.activations + p.items.logits + p.items.recompute + p.training!.batchInputs,
      slack: p.training!.poolSlack,
      residual: B * T * config.dim * 4,
      detail: p.training!,
    };
  };

  it('CPU: the whole tape without recompute; with it, the planned peak less one residual', async () => {
    const off = await peak(new CpuBackend(), false);
    const on = await peak(new CpuBackend(), true);
    const pOff = planned(false),
      pOn = planned(true);
    // without recompute nothing is released before the step ends: the peak is the planner's sum
    expect(off.peak).toBe(pOff.tape);
    // with it: checkpoints, the head and one layer's forward and backward. The planner also counts
    // the gradient carried into a layer apart from the head's d(residual), which is that gradient
    // for the top layer and is released once used: one N×dim buffer of margin (docs/planner.md).
    expect(on.peak).toBe(pOn.tape - pOn.residual);
    const t = pOn.detail;
    expect(on.peak).toBe(t.batchInputs + t.checkpoints + t.head + t.layerForward + t.layerBackward);
    expect(on.peak).toBeLessThan(off.peak);
    // 4 layers: the whole tape is 1.6× the recompute peak here; LLaMA-7b at 1 × 512 tokens: 16×
    expect(off.peak / on.peak).toBeGreaterThan(1.5);
  });

  it('GPU: the same live peaks; the buffer pool within the plan and its rounding', async () => {
    const gpu = await testGpu();
    const off = await peak(new GpuBackend(gpu), false, gpu);
    const on = await peak(new GpuBackend(gpu), true, gpu);
    const pOff = planned(false),
      pOn = planned(true);
    expect(off.peak).toBe(pOff.tape);
    expect(on.peak).toBe(pOn.tape - pOn.residual);
    // the pool keeps what it made (buckets of sizes the layers cannot reuse stay held)
    expect(off.pooled).toBe(pOff.tape + pOff.slack);
    expect(on.pooled).toBeLessThanOrEqual(pOn.tape + pOn.slack);
    expect(on.pooled).toBeGreaterThanOrEqual(on.peak);
    expect(on.pooled).toBeLessThan(off.pooled);
  });
});

describe('peak memory of a NAT, NCE and linear-mix step, measured and planned', () => {
  const B = 2,
    T = 12;
  const batch = [ex(11, T + 1), ex(12, T + 1)];
  const VARIANTS = ['nat', 'nce', 'linmix'] as const;
  type Variant = (typeof VARIANTS)[number];
  const plan = (v: Variant, recompute: boolean) =>
    planStep(recompute, v === 'linmix' ? { kind: 'linmix' } : { kind: v, du: 8 });
  const tape = (v: Variant, recompute: boolean) => {
    const p = plan(v, recompute);
    return p.items.activations + p.items.logits + p.items.recompute + p.training!.batchInputs;
  };
  /** The stage's objective, as src/method/stages/stages.ts builds it (NAT keeps its α). */
  function stageObjective<T extends BackendTensor>(w: World<T>, v: Variant): Objective<T, Example> {
    switch (v) {
      case 'nat':
        return likelihoodObjective(w.model, (tp, s, tr) =>
          natHook(tp, w.lora, w.neg, w.unit, { trainable: true, training: tr, seed: s }, []),
        );
      case 'nce':
        return nceObjective(w.model, {
          teacher: (tp) => natHook(tp, w.lora, w.neg, w.unit, { trainable: false, training: false, seed: 0 }),
          negative: (tp) => loraHook(tp, w.neg, 0, false, true),
          student: (tp, s, tr) => loraHook(tp, w.student, s, tr),
        });
      case 'linmix':
        return likelihoodObjective(w.model, (tp, s, tr) => linearMixHook(tp, w.lora, w.neg, s, tr));
    }
  }
  async function peak<T extends BackendTensor>(
    be: Backend<T>,
    v: Variant,
    recompute: boolean,
    frozenRank?: number,
  ) {
    const w = world(be, frozenRank ? { rank: frozenRank, pos: v === 'nce' } : undefined);
    const m = liveBytes(be);
    const objective = stageObjective(w, v);
    const tp = new Tape(be);
    const before = m.bytes;
    m.peak = before;
    await objective.run(tp, batch, { norm: objective.prepare(batch), seed: 7, training: true, recompute });
    tp.backward();
    tp.release();
    expect(m.bytes).toBe(before);
    return m.peak - before;
  }
  const residual = B * T * config.dim * 4;

  it('the adapters, their gradients and AdamW state: by hand', () => {
    // per layer, rank 4: q (32+32), k (32+16), v (32+16), o (32+32), gate, up (32+64), down (64+32)
    const P = 4 * (64 + 48 + 48 + 64 + 96 + 96 + 96) * config.nLayers;
    // the unit per site (d_u 8): W_Q 8×in, W_K and W_V1 8×out, W_V2 out×8
    const sites = [
      [32, 32],
      [32, 16],
      [32, 16],
      [32, 32],
      [32, 64],
      [32, 64],
      [64, 32],
    ];
    const U = sites.reduce((n, [inp, out]) => n + 8 * inp! + 3 * 8 * out!, 0) * config.nLayers;
    const lora = planStep(false).items;
    const nat = plan('nat', false).items;
    const nce = plan('nce', false).items;
    const mix = plan('linmix', false).items;
    expect(lora.adapters).toBe(4 * P);
    expect(nat.adapters).toBe(4 * (2 * P + U)); // positive, negative, unit
    expect(nce.adapters).toBe(4 * (3 * P + U)); // student, NAT's two LoRAs and unit
    expect(mix.adapters).toBe(4 * 2 * P);
    for (const i of [lora, nat, nce, mix]) expect(i.gradients).toBe(i.adapters);
    // AdamW's two moments of what is trained, and a norm per trained tensor (+ the total)
    const tensors = 2 * TARGETS.length * config.nLayers;
    expect(nat.optimizer).toBe(8 * (P + U) + 4 * 3 * tensors + 4);
    expect(nce.optimizer).toBe(lora.optimizer);
    expect(mix.optimizer).toBe(lora.optimizer);
    // NCE keeps the teacher's and the negative model's logits beside the student's and its gradient
    expect(nce.logits).toBe(lora.logits + 2 * B * T * config.vocabSize * 4);
  });

  for (const v of VARIANTS)
    it(`${v}: the live peak is the plan's tape, without recompute and with it (CPU and GPU)`, async () => {
      const gpu = await testGpu();
      for (const be of [new CpuBackend(), new GpuBackend(gpu)] as unknown as Backend<BackendTensor>[]) {
        const off = await peak(be, v, false);
        const on = await peak(be, v, true);
        expect(off, `${v} ${be.kind}: recompute off`).toBe(tape(v, false));
        // with recompute: less one residual of margin, as for a LoRA step (above) — unless the
        // peak is in NCE's frozen forwards (the NAT teacher's last layer, here: d_u 8 on dim 32)
        const frozen = plan(v, true).training!.frozenPeak;
        expect(frozen > tape(v, true) - residual).toBe(v === 'nce');
        expect(on, `${v} ${be.kind}: recompute on`).toBe(Math.max(tape(v, true) - residual, frozen));
        expect(on).toBeLessThan(off);
      }
    });

  it('frozen LoRAs of rank 8 beside a trained one of rank 4: planned with the shapes given, as measured (CPU)', async () => {
    const r8 = { rank: 8, targets: TARGETS, dropout: LORA.dropout };
    const P = (r: number) => (r / 4) * (planStep(false).items.adapters / 4);
    for (const v of VARIANTS) {
      const frozen = v === 'nce' ? { pos: r8, neg: r8 } : { neg: r8 };
      const variant: TrainVariant = v === 'linmix' ? { kind: 'linmix', frozen } : { kind: v, du: 8, frozen };
      const same = plan(v, false).items;
      const items = planStep(false, variant).items;
      // the adapters: each frozen LoRA counted at rank 8 (twice the rank-4 one), the rest as before
      const frozenLoras = v === 'nce' ? 2 : 1;
      expect(items.adapters - same.adapters, v).toBe(4 * frozenLoras * (P(8) - P(4)));
      expect(items.optimizer, v).toBe(same.optimizer);
      for (const recompute of [false, true]) {
        const p = planStep(recompute, variant);
        const t = p.items.activations + p.items.logits + p.items.recompute + p.training!.batchInputs;
        const measured = await peak(new CpuBackend(), v, recompute, 8);
        expect(measured, `${v}, recompute ${recompute}`).toBe(
          recompute ? Math.max(t - residual, p.training!.frozenPeak) : t,
        );
        if (v !== 'nce' || recompute)
          expect(measured, `${v}: not the rank-4 plan`).not.toBe(tape(v, recompute));
      }
    }
  });
});

describe('a method stage with recompute on', () => {
  it('StageConfig.recompute: the same losses, a lower peak (CPU backend)', async () => {
    const data = { pos: [] as TrainItem[], neg: [] as TrainItem[] };
    for (let i = 0; i < 6; i++) {
      const { question, pos, neg } = arithCase(i);
      data.pos.push({ question, rationale: pos });
      data.neg.push({ question, rationale: neg });
    }
    const run = async (recompute: boolean) => {
      const be = new CpuBackend();
      const model = loadLlama(be, tinyConfig, randomLlamaWeights(tinyConfig, 3));
      const m = liveBytes(be);
      const r = await runStage({
        stage: 'kd',
        model,
        tokenizer: tinyTok,
        data,
        config: { steps: 3, batchSize: 3, lr: 1e-2, warmup: 0, targets: ['q', 'v', 'down'], recompute },
      });
      return { losses: r.losses, peak: m.peak };
    };
    const off = await run(false);
    const on = await run(true);
    expect(on.losses).toEqual(off.losses);
    expect(on.peak).toBeLessThan(off.peak);
  });
});
