/**
 * LoRA fine-tuning of a frozen (possibly quantized) LLaMA: batches of token sequences with a loss
 * mask → tape forward → fused cross-entropy → backward → NaN/Inf check → clipped AdamW. A step
 * that produced a non-finite loss or gradient is refused before it touches the weights.
 *
 * @example
 *   const trainer = new LoraTrainer(model, adapter, { ...DEFAULT_ADAMW, lr: 1e-3 });
 *   const { loss } = await trainer.step([{ tokens: [1, 45, 67, 2], lossMask: [0, 0, 1, 1] }]);
 */
import type { BackendTensor } from '../backend/types.ts';
import { Tape } from '../autograd/tape.ts';
import * as ad from '../autograd/ops.ts';
import { EngineError } from '../errors.ts';
import type { LlamaModel } from '../model/llama.ts';
import type { LoraAdapter } from '../model/lora.ts';
import { AdamW, type AdamWConfig, type AdamWState } from './adamw.ts';
import { llamaForward, loraHook, type BatchTensors } from './forward.ts';

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

export class LoraTrainer<T extends BackendTensor> {
  readonly opt: AdamW<T>;
  private seed: number;

  constructor(
    readonly model: LlamaModel<T>,
    readonly adapter: LoraAdapter<T>,
    config: AdamWConfig,
    seed = 1234,
  ) {
    this.opt = new AdamW(model.be, adapter.params, config);
    this.seed = seed;
  }

  get stepCount(): number {
    return this.opt.step;
  }

  /**
   * One optimizer step over `microBatches` (gradient accumulation: the loss is the mean over all
   * loss tokens of all micro-batches). Returns the loss before the update.
   */
  async step(
    examples: readonly Example[],
    opts: { microBatch?: number; lr?: number } = {},
  ): Promise<StepResult> {
    const be = this.model.be;
    const total = countLossTokens(examples);
    if (total === 0) throw new EngineError('BAD_ARGUMENT', 'this batch has no tokens that carry loss');
    const mb = opts.microBatch ?? examples.length;
    const T = Math.max(...examples.map((e) => e.tokens.length)) - 1;
    if (T < 1) throw new EngineError('BAD_ARGUMENT', 'training sequences need at least two tokens');
    if (T > this.model.config.maxSeqLen) {
      throw new EngineError(
        'BAD_ARGUMENT',
        `a sequence of ${T + 1} tokens is longer than the model's context (${this.model.config.maxSeqLen}).`,
      );
    }
    let loss = 0;
    const stepSeed = (this.seed + this.opt.step * 7919) >>> 0;
    for (let i = 0; i < examples.length; i += mb) {
      const chunk = examples.slice(i, i + mb);
      const p = packBatch(chunk, T, total);
      const tape = new Tape(be);
      const batch = uploadBatch(tape, p);
      try {
        const logits = llamaForward(
          tape,
          this.model,
          batch,
          loraHook(tape, this.adapter, stepSeed + i, true),
        );
        const losses = ad.crossentropy(tape, logits, batch.targets, batch.weights);
        tape.backward();
        const l = await be.read(losses);
        for (let j = 0; j < l.length; j++) loss += l[j]! * p.weights[j]!;
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
    return { loss, gradNorm, tokens: total };
  }

  /** Mean loss over examples without training (no dropout). */
  async evaluate(examples: readonly Example[]): Promise<number> {
    const be = this.model.be;
    const total = countLossTokens(examples);
    const T = Math.max(...examples.map((e) => e.tokens.length)) - 1;
    const p = packBatch(examples, T, total);
    const tape = new Tape(be);
    try {
      const batch = uploadBatch(tape, p);
      const logits = llamaForward(tape, this.model, batch, loraHook(tape, this.adapter, 0, false));
      const l = await be.read(ad.crossentropy(tape, logits, batch.targets, batch.weights));
      let loss = 0;
      for (let j = 0; j < l.length; j++) loss += l[j]! * p.weights[j]!;
      return loss;
    } finally {
      tape.release();
    }
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
