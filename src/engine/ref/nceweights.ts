/**
 * nceweights CPU reference (the law for shaders/nceweights.wgsl): NCE's per-sequence β and
 * per-token distillation weights (METHOD.md §2). No backward: β is computed from the frozen NAT and
 * negative models, so no gradient flows through it.
 */
import type { FloatArray } from './types.ts';

/**
 * beta (B) = tanh(mean over masked t of kl[b,t]) = tanh(Σ_t mask·kl / Σ_t mask), 0 when the
 * sequence has no masked token; weights (B·T) = mask · (0.5 + beta[b]) · scale.
 */
export function nceWeightsForward(
  beta: FloatArray,
  weights: FloatArray,
  kl: FloatArray,
  mask: FloatArray,
  B: number,
  T: number,
  scale: number,
): void {
  for (let b = 0; b < B; b++) {
    let sum = 0,
      count = 0;
    for (let t = 0; t < T; t++) {
      sum += mask[b * T + t]! * kl[b * T + t]!;
      count += mask[b * T + t]!;
    }
    beta[b] = count > 0 ? Math.tanh(sum / count) : 0;
    for (let t = 0; t < T; t++) weights[b * T + t] = mask[b * T + t]! * (0.5 + beta[b]!) * scale;
  }
}
