/**
 * kl CPU reference (the law for shaders/kl.wgsl): KL divergence and soft-target cross-entropy.
 * Logs come from log-softmax (x − logsumexp), never log(p + 1e-7).
 */
import type { FloatArray } from './types.ts';

/** log Σ_i exp(x[off + i]), max-subtracted. */
function logSumExp(x: FloatArray, off: number, V: number): number {
  let max = -Infinity;
  for (let i = 0; i < V; i++) max = Math.max(max, x[off + i]!);
  let sum = 0;
  for (let i = 0; i < V; i++) sum += Math.exp(x[off + i]! - max);
  return max + Math.log(sum);
}

/** out (N) = Σ_v p(v) · (log p(v) − log q(v)), p = softmax(logitsP), q = softmax(logitsQ). */
export function klForward(
  out: FloatArray,
  logitsP: FloatArray,
  logitsQ: FloatArray,
  N: number,
  V: number,
): void {
  for (let n = 0; n < N; n++) {
    const lseP = logSumExp(logitsP, n * V, V);
    const lseQ = logSumExp(logitsQ, n * V, V);
    let kl = 0;
    for (let i = 0; i < V; i++) {
      const logp = logitsP[n * V + i]! - lseP;
      const logq = logitsQ[n * V + i]! - lseQ;
      kl += Math.exp(logp) * (logp - logq);
    }
    out[n] = kl;
  }
}

/**
 * losses (N) = −Σ_v p_T(v) · log p_S(v); dlogits (student, N,V) = or += (accumulate)
 * weights[n] · (p_S − p_T), 0 where weights[n] is 0. dlogits null: forward only.
 */
export function softCrossentropyForwardBackward(
  losses: FloatArray,
  dlogits: FloatArray | null,
  logitsTeacher: FloatArray,
  logitsStudent: FloatArray,
  weights: FloatArray,
  N: number,
  V: number,
  accumulate: boolean,
): void {
  for (let n = 0; n < N; n++) {
    const lseT = logSumExp(logitsTeacher, n * V, V);
    const lseS = logSumExp(logitsStudent, n * V, V);
    let loss = 0;
    for (let i = 0; i < V; i++) {
      loss -= Math.exp(logitsTeacher[n * V + i]! - lseT) * (logitsStudent[n * V + i]! - lseS);
    }
    losses[n] = loss;
    if (!dlogits) continue;
    const w = weights[n]!;
    for (let i = 0; i < V; i++) {
      const pT = Math.exp(logitsTeacher[n * V + i]! - lseT);
      const pS = Math.exp(logitsStudent[n * V + i]! - lseS);
      const g = w === 0 ? 0 : w * (pS - pT);
      dlogits[n * V + i] = (accumulate ? dlogits[n * V + i]! : 0) + g;
    }
  }
}
