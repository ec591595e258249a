/**
 * LoRA fine-tuning of a frozen (possibly quantized) LLaMA: batches of token sequences with a loss
 * mask → tape forward → fused cross-entropy → backward → NaN/Inf check → clipped AdamW. A step
 * that produced a non-finite loss or gradient is refused before it touches the weights.
 *
 * @example
 *   const trainer = new LoraTrainer(model, adapter, { ...DEFAULT_ADAMW, lr: 1e-3 });
 *   // a 7B base at 512 tokens needs activation recompute:
 *   //   new LoraTrainer(model, adapter, cfg, 1234, { recompute: true })
 *   const { loss } = await trainer.step([{ tokens: [1, 45, 67, 2], lossMask: [0, 0, 1, 1] }]);
 */
import type { Backend, BackendTensor } from '../backend/types.ts';
import { Tape, type Param } from '../autograd/tape.ts';
import * as ad from '../autograd/ops.ts';
import { EngineError } from '../errors.ts';
import type { LlamaModel } from '../model/llama.ts';
import type { LoraAdapter } from '../model/lora.ts';
import { AdamW, type AdamWConfig, type AdamWState } from './adamw.ts';
import {
  llamaForward,
  loraHook,
  type BatchTensors,
  type SiteHook,
  type TrainableWeights,
} from './forward.ts';

/** A training sequence: token ids (BOS first) and, per position, whether predicting it counts. */
export interface Example {
  tokens: readonly number[];
  /** lossMask[t] = 1: the loss includes predicting tokens[t] from tokens[<t] (t ≥ 1). */
  lossMask: readonly number[];
}

export interface StepResult {
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  tokens: number;
}

/** Packs examples into (B, T) inputs, targets, weights and positions. Weights sum to 1 over all micro-batches. */
export function packBatch(examples: readonly Example[], T: number, totalLossTokens: number, pad = 0) {
  const B = examples.length;
  const tokens = new Uint32Array(B * T).fill(pad);
  const targets = new Uint32Array(B * T).fill(pad);
  const weights = new Float32Array(B * T);
  const positions = new Uint32Array(B * T);
  examples.forEach((ex, b) => {
    for (let t = 0; t < T; t++) {
      positions[b * T + t] = t;
      if (t < ex.tokens.length) tokens[b * T + t] = ex.tokens[t]!;
      if (t + 1 < ex.tokens.length) {
        targets[b * T + t] = ex.tokens[t + 1]!;
        weights[b * T + t] = (ex.lossMask[t + 1] ?? 0) / totalLossTokens;
      }
    }
  });
  return { B, T, tokens, targets, weights, positions };
}

/** A packed batch on the backend, in tape-owned memory. */
export function uploadBatch<T extends BackendTensor>(
  tape: Tape<T>,
  p: ReturnType<typeof packBatch>,
): BatchTensors<T> {
  const n = p.B * p.T;
  const batch: BatchTensors<T> = {
    B: p.B,
    T: p.T,
    tokens: tape.alloc([n], 'tokens', 'u32'),
    targets: tape.alloc([n], 'targets', 'u32'),
    weights: tape.alloc([n], 'weights'),
    positions: tape.alloc([n], 'positions', 'u32'),
  };
  tape.be.write(batch.tokens, p.tokens);
  tape.be.write(batch.targets, p.targets);
  tape.be.write(batch.weights, p.weights);
  tape.be.write(batch.positions, p.positions);
  return batch;
}

export function countLossTokens(examples: readonly Example[]): number {
  let n = 0;
  for (const ex of examples) for (let t = 1; t < ex.tokens.length; t++) n += ex.lossMask[t] ?? 0;
  return n;
}

/** What a training objective sees besides its micro-batch. */
/** Counts over a whole step that normalise its loss (the number of loss tokens, pairs, ...). */
export interface StepNorm {
  /** What the step reports as its size: loss tokens, or pairs for pairwise objectives. */
  tokens: number;
  [count: string]: number;
}

export interface ObjectiveContext {
  /** From `prepare`, shared by all micro-batches of the step. */
  norm: StepNorm;
  /** Seed of this micro-batch (dropout masks). */
  seed: number;
  /** false in `evaluate`: no dropout, no backward. */
  training: boolean;
  /** Run every forward of the micro-batch with activation recompute (ForwardOptions). */
  recompute?: boolean;
}

/** A micro-batch's loss share (already normalised: the step's loss is the sum) and extra figures. */
export interface ObjectiveResult {
  loss: number;
  /** Figures to show (NAT's α per layer, NCE's β, a ranker's accuracy...): numbers or number lists. */
  metrics?: Record<string, number | number[]>;
}

/**
 * A loss over examples of type E: `run` builds the forward on the tape and seeds the gradient of
 * its loss (the fused loss kernels write d(logits) themselves); the trainer runs the backward.
 */
export interface Objective<T extends BackendTensor, E> {
  /** Once per step over all its examples; throws EngineError('BAD_ARGUMENT') for an unusable batch. */
  prepare(examples: readonly E[]): StepNorm;
  run(tape: Tape<T>, chunk: readonly E[], ctx: ObjectiveContext): Promise<ObjectiveResult>;
}

export interface TrainStepResult extends StepResult {
  metrics: Record<string, number | number[]>;
}

/** How a trainer runs its steps (besides the optimizer's settings). */
export interface TrainerOptions {
  /**
   * Activation recompute (gradient checkpointing) in every forward of every step: the tape keeps
   * the residual stream at layer boundaries and re-runs one layer at a time in the backward — what
   * a 7B LoRA step at 512 tokens needs to fit in 8 GB (docs/planner.md). Same losses and
   * gradients, one more forward of every layer per step. Default false (the built-in models fit
   * without).
   */
  recompute?: boolean;
}

/**
 * The training loop shared by every stage: micro-batches → objective → backward → NaN/Inf check →
 * clipped AdamW over `params`. A step with a non-finite loss or gradient is refused before it
 * touches the parameters.
 */
export class Trainer<T extends BackendTensor, E> {
  readonly opt: AdamW<T>;
  private seed: number;
  /** Activation recompute for the next steps and evaluations (TrainerOptions); may be switched. */
  recompute: boolean;

  constructor(
    readonly be: Backend<T>,
    readonly params: readonly Param<T>[],
    config: AdamWConfig,
    readonly objective: Objective<T, E>,
    seed = 1234,
    opts: TrainerOptions = {},
  ) {
    if (params.length === 0)
      throw new EngineError('BAD_ARGUMENT', 'nothing to train: no trainable parameters');
    this.opt = new AdamW(be, params, config);
    this.seed = seed;
    this.recompute = opts.recompute ?? false;
  }

  get stepCount(): number {
    return this.opt.step;
  }

  /** One optimizer step over `examples` in micro-batches of `microBatch` (gradient accumulation). */
  async step(
    examples: readonly E[],
    opts: { microBatch?: number; lr?: number } = {},
  ): Promise<TrainStepResult> {
    const norm = this.objective.prepare(examples);
    const mb = opts.microBatch ?? examples.length;
    let loss = 0;
    const metrics: Record<string, number | number[]> = {};
    const stepSeed = (this.seed + this.opt.step * 7919) >>> 0;
    for (let i = 0; i < examples.length; i += mb) {
      const tape = new Tape(this.be);
      try {
        const r = await this.objective.run(tape, examples.slice(i, i + mb), {
          norm,
          seed: stepSeed + i,
          training: true,
          recompute: this.recompute,
        });
        tape.backward();
        loss += r.loss;
        mergeMetrics(metrics, r.metrics);
      } finally {
        tape.release();
      }
    }
    this.opt.measure();
    const { gradNorm, finite } = await this.opt.readMeasure();
    if (!finite || !Number.isFinite(loss)) {
      this.opt.zeroGrad();
      throw new EngineError(
        'NON_FINITE',
        `Training stopped at step ${this.opt.step + 1}: the ${Number.isFinite(loss) ? 'gradients' : 'loss'} became NaN or infinite, so this update was not applied and the adapter is unchanged. Lower the learning rate or check the data.`,
      );
    }
    this.opt.apply(opts.lr);
    return { loss, gradNorm, tokens: norm.tokens, metrics };
  }

  /** The objective's loss over `examples` without training (no dropout, no update). */
  async evaluate(examples: readonly E[], microBatch = examples.length): Promise<ObjectiveResult> {
    const norm = this.objective.prepare(examples);
    let loss = 0;
    const metrics: Record<string, number | number[]> = {};
    for (let i = 0; i < examples.length; i += microBatch) {
      const tape = new Tape(this.be);
      try {
        const r = await this.objective.run(tape, examples.slice(i, i + microBatch), {
          norm,
          seed: 0,
          training: false,
          recompute: this.recompute,
        });
        loss += r.loss;
        mergeMetrics(metrics, r.metrics);
      } finally {
        tape.release();
      }
    }
    return { loss, metrics };
  }

  optimizerState(): Promise<AdamWState> {
    return this.opt.state();
  }

  loadOptimizerState(s: AdamWState): void {
    this.opt.load(s);
  }

  destroy(): void {
    this.opt.destroy();
  }
}

/** Numbers add up over micro-batches; lists concatenate. */
function mergeMetrics(into: Record<string, number | number[]>, m: ObjectiveResult['metrics']): void {
  if (!m) return;
  for (const [k, v] of Object.entries(m)) {
    const prev = into[k];
    if (Array.isArray(v)) into[k] = [...(Array.isArray(prev) ? prev : []), ...v];
    else into[k] = (typeof prev === 'number' ? prev : 0) + v;
  }
}

/** Checks a batch of token sequences and returns the length T of its inputs (longest − 1). */
export function sequenceLength(examples: readonly Example[], maxSeqLen: number): number {
  const T = Math.max(0, ...examples.map((e) => e.tokens.length)) - 1;
  if (T < 1) throw new EngineError('BAD_ARGUMENT', 'training sequences need at least two tokens');
  if (T > maxSeqLen) {
    throw new EngineError(
      'BAD_ARGUMENT',
      `a sequence of ${T + 1} tokens is longer than the model's context (${maxSeqLen}).`,
    );
  }
  return T;
}

/**
 * Maximum likelihood on token sequences (mean over all loss tokens of the step), through a site
 * hook (LoRA, NAT, none) and optionally trainable base weights: CoT KD, Neg, MIX and pre-training.
 */
export function likelihoodObjective<T extends BackendTensor>(
  model: LlamaModel<T>,
  hook: (tape: Tape<T>, seed: number, training: boolean) => SiteHook<T> | null,
  trainable: TrainableWeights<T> | null = null,
): Objective<T, Example> {
  return {
    prepare(examples) {
      const total = countLossTokens(examples);
      if (total === 0) throw new EngineError('BAD_ARGUMENT', 'this batch has no tokens that carry loss');
      sequenceLength(examples, model.config.maxSeqLen);
      return { tokens: total };
    },
    async run(tape, chunk, ctx) {
      const p = packBatch(chunk, sequenceLength(chunk, model.config.maxSeqLen), ctx.norm.tokens);
      const batch = uploadBatch(tape, p);
      const logits = llamaForward(tape, model, batch, hook(tape, ctx.seed, ctx.training), trainable, {
        recompute: ctx.recompute ?? false,
      });
      const losses = ad.crossentropy(tape, logits, batch.targets, batch.weights);
      const l = await model.be.read(losses);
      let loss = 0;
      for (let j = 0; j < l.length; j++) loss += l[j]! * p.weights[j]!;
      return { loss };
    },
  };
}

/** LoRA fine-tuning by maximum likelihood (the CoT KD / Neg stage's trainer). */
export class LoraTrainer<T extends BackendTensor> extends Trainer<T, Example> {
  constructor(
    readonly model: LlamaModel<T>,
    readonly adapter: LoraAdapter<T>,
    config: AdamWConfig,
    seed = 1234,
    opts: TrainerOptions = {},
  ) {
    super(
      model.be,
      adapter.params,
      config,
      likelihoodObjective(model, (tape, s, training) => loraHook(tape, adapter, s, training)),
      seed,
      opts,
    );
  }

  /** Mean loss over examples without training (no dropout). */
  async evaluateLoss(examples: readonly Example[]): Promise<number> {
    return (await this.evaluate(examples)).loss;
  }
}
