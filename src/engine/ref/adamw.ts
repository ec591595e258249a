/**
 * adamw CPU reference (the law for shaders/adamw.wgsl): PyTorch torch.optim.AdamW with decoupled
 * weight decay, clip_grad_norm_ over all parameter tensors, and the non-finite check.
 */
import type { FloatArray } from './types.ts';

/** out[slot] = Σ grad² (written). */
export function gradNormSquared(out: FloatArray, grad: FloatArray, N: number, slot: number): void {
  let ss = 0;
  for (let i = 0; i < N; i++) ss += grad[i]! * grad[i]!;
  out[slot] = ss;
}

/** clip_grad_norm_'s factor: min(1, maxNorm / (‖g‖ + 1e-6)) with ‖g‖ = sqrt(Σ norms); 1 when maxNorm ≤ 0. */
export function clipScale(norms: FloatArray, numNorms: number, maxNorm: number): number {
  if (maxNorm <= 0) return 1;
  let total = 0;
  for (let k = 0; k < numNorms; k++) total += norms[k]!;
  return Math.min(1, maxNorm / (Math.sqrt(total) + 1e-6));
}

/** One AdamW step on param, m, v (N) in place; `step` counts from 1. */
export function adamwStep(
  param: FloatArray,
  grad: FloatArray,
  m: FloatArray,
  v: FloatArray,
  norms: FloatArray,
  numNorms: number,
  N: number,
  lr: number,
  beta1: number,
  beta2: number,
  eps: number,
  weightDecay: number,
  step: number,
  maxNorm: number,
): void {
  const clip = clipScale(norms, numNorms, maxNorm);
  const bc1 = 1 - beta1 ** step;
  const bc2 = 1 - beta2 ** step;
  for (let i = 0; i < N; i++) {
    const g = grad[i]! * clip;
    const p = param[i]! * (1 - lr * weightDecay); // decoupled weight decay: p −= lr·wd·p
    m[i] = beta1 * m[i]! + (1 - beta1) * g;
    v[i] = beta2 * v[i]! + (1 - beta2) * g * g;
    const mHat = m[i]! / bc1;
    const vHat = v[i]! / bc2;
    param[i] = p - (lr * mHat) / (Math.sqrt(vHat) + eps);
  }
}

/** flag[0] = 1 if any x is NaN or ±Inf (what the shader tests with exponent bits); else unchanged. */
export function finiteCheck(flag: Uint32Array, x: FloatArray, N: number): void {
  for (let i = 0; i < N; i++) if (!Number.isFinite(x[i]!)) flag[0] = 1;
}
