/** crossentropy CPU reference (the law for shaders/crossentropy.wgsl). */
import type { FloatArray } from './types.ts';

/** losses (N) = −log softmax(logits)[target] per row; a target ≥ V (ignore_index) gives loss 0. */
export function crossentropyForward(
  losses: FloatArray,
  logits: FloatArray,
  targets: ArrayLike<number>,
  N: number,
  V: number,
): void {
  for (let n = 0; n < N; n++) {
    const x = logits.subarray(n * V, (n + 1) * V);
    const t = targets[n]!;
    let max = -Infinity;
    for (let i = 0; i < V; i++) max = Math.max(max, x[i]!);
    let sum = 0;
    for (let i = 0; i < V; i++) sum += Math.exp(x[i]! - max);
    losses[n] = t < V ? max + Math.log(sum) - x[t]! : 0;
  }
}

/**
 * losses as crossentropyForward; dlogits (N,V) = weights[n] · (softmax − onehot(target)), written.
 * Rows with weight 0 or target ≥ V get dlogits 0. dlogits null: forward only.
 */
export function crossentropyForwardBackward(
  losses: FloatArray,
  dlogits: FloatArray | null,
  logits: FloatArray,
  targets: ArrayLike<number>,
  weights: FloatArray,
  N: number,
  V: number,
): void {
  crossentropyForward(losses, logits, targets, N, V);
  if (!dlogits) return;
  for (let n = 0; n < N; n++) {
    const x = logits.subarray(n * V, (n + 1) * V);
    const t = targets[n]!;
    const w = weights[n]!;
    let max = -Infinity;
    for (let i = 0; i < V; i++) max = Math.max(max, x[i]!);
    let sum = 0;
    for (let i = 0; i < V; i++) sum += Math.exp(x[i]! - max);
    for (let i = 0; i < V; i++) {
      const p = Math.exp(x[i]! - max) / sum;
      dlogits[n * V + i] = w === 0 || t >= V ? 0 : w * (p - (i === t ? 1 : 0));
    }
  }
}
