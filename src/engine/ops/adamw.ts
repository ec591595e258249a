/**
 * adamw: the optimizer step (PyTorch AdamW + clip_grad_norm_) and the checks around it, all on the
 * GPU so a training step needs no readback. Same argument order as ref/adamw.ts, with `gpu` first.
 *
 * @example
 *   // norms: f32 (P), one slot per parameter tensor; flag: u32 (1), zeroed before the checks
 *   params.forEach((p, k) => gradNormSquared(gpu, norms, p.grad, p.size, k));
 *   finiteCheck(gpu, flag, norms, P); // a NaN/Inf gradient shows in its Σg²; read flag at the boundary
 *   for (const p of params) {
 *     adamwStep(gpu, p.w, p.grad, p.m, p.v, norms, P, p.size, 1e-3, 0.9, 0.999, 1e-8, 0.01, t, 1);
 *   }
 */
import code from '../../../shaders/adamw.wgsl?raw';
import { EngineError } from '../errors.ts';
import { f32, type Gpu } from '../gpu/gpu.ts';
import { numel, type Tensor } from '../gpu/tensor.ts';

const WG = 256;
const MAX_GROUPS = 4096; // grid-stride beyond this
const norm = { op: 'adamw', code, entry: 'grad_norm_squared', constants: { WG } } as const;
const step_ = { op: 'adamw', code, entry: 'adamw_step', constants: { WG } } as const;
const check = { op: 'adamw', code, entry: 'finite_check', constants: { WG } } as const;

const groups = (N: number): number => Math.min(Math.ceil(N / WG), MAX_GROUPS);

/** out[slot] = Σ grad² over grad (N) (written, deterministic order). One slot per parameter tensor. */
export function gradNormSquared(gpu: Gpu, out: Tensor, grad: Tensor, N: number, slot: number): void {
  if (!Number.isInteger(slot) || slot < 0 || slot >= numel(out.shape)) {
    throw new EngineError(
      'BAD_ARGUMENT',
      `gradNormSquared: slot ${slot} is outside "${out.label}" (${numel(out.shape)} slots).`,
    );
  }
  gpu.dispatch(norm, [1], [out, grad], [N, slot]);
}

/**
 * One AdamW step (torch.optim.AdamW, decoupled weight decay) on param/m/v (N), in place. The gradient
 * is first scaled by clip = min(1, maxNorm / (sqrt(Σ norms[0..numNorms)) + 1e-6)) (clip_grad_norm_);
 * maxNorm ≤ 0 turns clipping off. `step` counts from 1 (bias correction 1 − β^step).
 */
export function adamwStep(
  gpu: Gpu,
  param: Tensor,
  grad: Tensor,
  m: Tensor,
  v: Tensor,
  norms: Tensor,
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
  if (!Number.isInteger(step) || step < 1) {
    throw new EngineError(
      'BAD_ARGUMENT',
      `adamwStep: step must be an integer ≥ 1 (got ${step}); count steps from 1.`,
    );
  }
  const bc1 = 1 - beta1 ** step;
  const bc2 = 1 - beta2 ** step;
  const params = [
    N,
    numNorms,
    f32(lr),
    f32(beta1),
    f32(beta2),
    f32(eps),
    f32(weightDecay),
    f32(bc1),
    f32(bc2),
    f32(maxNorm),
  ];
  gpu.dispatch(step_, [groups(N)], [param, grad, m, v, norms], params);
}

/** flag[0] (u32) = 1 if any of x (N) is NaN or ±Inf; otherwise flag is left as it was (zero it first). */
export function finiteCheck(gpu: Gpu, flag: Tensor, x: Tensor, N: number): void {
  gpu.dispatch(check, [groups(N)], [flag, x], [N]);
}
