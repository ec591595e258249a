/**
 * unlikelihood CPU reference (the law for shaders/unlikelihood.wgsl): token-level unlikelihood
 * (METHOD.md §4, UL baseline), loss = −log(max(1 − p_y, 1e-5)).
 *
 * 1 − p_y is never formed as 1 − p (which is 0 in float32 once p_y rounds to 1): it is
 * exp(lse_{v≠y} − lse) = Σ_{v≠y} e^{z_v} / Σ_v e^{z_v}. The gradient p_y(δ_vy − p_v)/(1 − p_y) is
 * p_y at v = y and −p_y · softmax_{v≠y}(z)_v elsewhere, so it never divides by a small number.
 */
import type { FloatArray } from './types.ts';

/** The clamp: 1 − p_y below this counts as this (loss ≤ −log(1e-5) ≈ 11.51, gradient 0). */
const UL_EPS = 1e-5;

/**
 * losses (N) = −log(max(1 − p_y, 1e-5)) (unweighted), p = softmax(logits[n]), y = targets[n];
 * a target ≥ V gives loss 0 and gradient 0. dlogits (N,V) = or += (accumulate)
 * weights[n] · p_y(δ_vy − p_v)/(1 − p_y), 0 where weights[n] = 0 or the clamp is active
 * (1 − p_y < 1e-5). dlogits null: forward only (weights not read).
 */
export function unlikelihoodForwardBackward(
  losses: FloatArray,
  dlogits: FloatArray | null,
  logits: FloatArray,
  targets: ArrayLike<number>,
  weights: FloatArray,
  N: number,
  V: number,
  accumulate: boolean,
): void {
  for (let n = 0; n < N; n++) {
    const off = n * V;
    const y = targets[n]!;
    // logsumexp over all v and over v ≠ y (−∞ when V = 1)
    let max = -Infinity,
      maxOther = -Infinity;
    for (let v = 0; v < V; v++) {
      max = Math.max(max, logits[off + v]!);
      if (v !== y) maxOther = Math.max(maxOther, logits[off + v]!);
    }
    let sum = 0,
      sumOther = 0;
    for (let v = 0; v < V; v++) {
      sum += Math.exp(logits[off + v]! - max);
      if (v !== y) sumOther += Math.exp(logits[off + v]! - maxOther);
    }
    const lse = max + Math.log(sum);
    const lseOther = sumOther > 0 ? maxOther + Math.log(sumOther) : -Infinity;
    const ignored = y >= V;
    const q = ignored ? 0 : Math.exp(lseOther - lse); // 1 − p_y
    const pY = ignored ? 0 : Math.exp(logits[off + y]! - lse);
    losses[n] = ignored ? 0 : -Math.log(Math.max(q, UL_EPS));
    if (!dlogits) continue;
    const w = weights[n]!;
    const active = !ignored && w !== 0 && q >= UL_EPS;
    for (let v = 0; v < V; v++) {
      const g = !active ? 0 : v === y ? w * pY : -w * pY * Math.exp(logits[off + v]! - lseOther);
      dlogits[off + v] = (accumulate ? dlogits[off + v]! : 0) + g;
    }
  }
}
