/**
 * AdamW (PyTorch semantics: decoupled weight decay) with global-norm clipping, all on the backend:
 * per-tensor Σg² into slots, then each update reads the slots and clips — no readback in between.
 * Optimizer state saves and restores as plain data (resume after a reload).
 */
import type { Backend, BackendTensor } from '../backend/types.ts';
import type { Param } from '../autograd/tape.ts';
import { EngineError } from '../errors.ts';
import { numel } from '../gpu/tensor.ts';

export interface AdamWConfig {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Global-norm clipping threshold; 0 turns clipping off. */
  maxGradNorm: number;
}

export const DEFAULT_ADAMW: AdamWConfig = {
  lr: 3e-4,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0,
  maxGradNorm: 1,
};

export interface AdamWState {
  step: number;
  m: Record<string, Float32Array>;
  v: Record<string, Float32Array>;
}

export class AdamW<T extends BackendTensor> {
  step = 0;
  private m: T[];
  private v: T[];
  private norms: T;
  private flag: T;

  constructor(
    private readonly be: Backend<T>,
    readonly params: readonly Param<T>[],
    readonly config: AdamWConfig,
  ) {
    this.m = params.map((p) =>
      be.fromData(p.value.shape, new Float32Array(numel(p.value.shape)), `adam.m(${p.name})`),
    );
    this.v = params.map((p) =>
      be.fromData(p.value.shape, new Float32Array(numel(p.value.shape)), `adam.v(${p.name})`),
    );
    this.norms = be.fromData(
      [Math.max(1, params.length)],
      new Float32Array(Math.max(1, params.length)),
      'adam.norms',
    );
    this.flag = be.fromData([1], new Uint32Array(1), 'adam.nonfinite');
  }

  /** Records Σg² per tensor and the non-finite check; `read` gives the global norm and the flag. */
  measure(): void {
    const { ops } = this.be;
    this.be.zero(this.norms);
    this.be.zero(this.flag);
    this.params.forEach((p, i) => {
      const n = numel(p.grad.shape);
      ops.gradNormSquared(this.norms, p.grad, n, i);
      ops.finiteCheck(this.flag, p.grad, n);
    });
  }

  /** Global gradient norm (before clipping) and whether any gradient holds NaN/Inf. */
  async readMeasure(): Promise<{ gradNorm: number; finite: boolean }> {
    const [norms, flag] = await Promise.all([this.be.read(this.norms), this.be.readU32(this.flag)]);
    let s = 0;
    for (let i = 0; i < this.params.length; i++) s += norms[i]!;
    return { gradNorm: Math.sqrt(s), finite: flag[0] === 0 && Number.isFinite(s) };
  }

  /** Applies one update with learning rate `lr` (after `measure`), then zeroes the gradients. */
  apply(lr = this.config.lr): void {
    const c = this.config;
    this.step++;
    this.params.forEach((p, i) => {
      this.be.ops.adamwStep(
        p.value,
        p.grad,
        this.m[i]!,
        this.v[i]!,
        this.norms,
        this.params.length,
        numel(p.value.shape),
        lr,
        c.beta1,
        c.beta2,
        c.eps,
        c.weightDecay,
        this.step,
        c.maxGradNorm,
      );
    });
    this.zeroGrad();
  }

  zeroGrad(): void {
    for (const p of this.params) this.be.zero(p.grad);
  }

  async state(): Promise<AdamWState> {
    const m: Record<string, Float32Array> = {};
    const v: Record<string, Float32Array> = {};
    for (let i = 0; i < this.params.length; i++) {
      const name = this.params[i]!.name;
      m[name] = await this.be.read(this.m[i]!);
      v[name] = await this.be.read(this.v[i]!);
    }
    return { step: this.step, m, v };
  }

  load(s: AdamWState): void {
    this.params.forEach((p) => {
      const m = s.m[p.name],
        v = s.v[p.name];
      if (!m || !v || m.length !== numel(p.value.shape) || v.length !== m.length) {
        throw new EngineError(
          'SHAPE_MISMATCH',
          `optimizer state for ${p.name} is missing or has the wrong size: it belongs to another run.`,
        );
      }
    });
    this.params.forEach((p, i) => {
      this.be.write(this.m[i]!, s.m[p.name]!);
      this.be.write(this.v[i]!, s.v[p.name]!);
    });
    this.step = s.step;
  }

  destroy(): void {
    for (const t of [...this.m, ...this.v, this.norms, this.flag]) this.be.destroy(t);
  }
}
