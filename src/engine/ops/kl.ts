/**
 * kl: per-row KL divergence between two logit rows, and the soft-target cross-entropy used for
 * distillation. Same argument order as ref/kl.ts, with `gpu` first. Logs come from log-softmax,
 * not log(p + 1e-7), so there is no epsilon bias.
 */
import code from '../../../shaders/kl.wgsl?raw';
import type { Gpu } from '../gpu/gpu.ts';
import type { Tensor } from '../gpu/tensor.ts';

const WG = 256;
const klFwd = { op: 'kl', code, entry: 'kl_forward', constants: { WG } } as const;
const softFwd = { op: 'kl', code, entry: 'soft_crossentropy_forward', constants: { WG } } as const;
const softFwdBwd = {
  op: 'kl',
  code,
  entry: 'soft_crossentropy_forward_backward',
  constants: { WG },
} as const;

/** out (N) = KL(p ‖ q) = Σ_v p(v) · (log p(v) − log q(v)), p = softmax(logitsP), q = softmax(logitsQ). */
export function klForward(
  gpu: Gpu,
  out: Tensor,
  logitsP: Tensor,
  logitsQ: Tensor,
  N: number,
  V: number,
): void {
  gpu.dispatch(klFwd, [N], [out, logitsP, logitsQ], [N, V, 0]);
}

/**
 * Distillation loss: losses (N) = −Σ_v p_T(v) · log p_S(v) (unweighted) and, when dlogits is given,
 * dlogits (N,V) of the student = or += (accumulate) weights[n] · (p_S − p_T). No gradient flows to
 * the teacher; a weight of 0 leaves the row's dlogits 0 (or untouched when accumulating).
 *
 * @example
 *   crossentropyForwardBackward(gpu, ceLosses, dlogits, logits, targets, ceWeights, N, V);
 *   softCrossentropyForwardBackward(gpu, kdLosses, dlogits, teacher, logits, kdWeights, N, V, true);
 */
export function softCrossentropyForwardBackward(
  gpu: Gpu,
  losses: Tensor,
  dlogits: Tensor | null,
  logitsTeacher: Tensor,
  logitsStudent: Tensor,
  weights: Tensor,
  N: number,
  V: number,
  accumulate: boolean,
): void {
  if (!dlogits) {
    gpu.dispatch(softFwd, [N], [losses, logitsTeacher, logitsStudent], [N, V, 0]);
    return;
  }
  gpu.dispatch(
    softFwdBwd,
    [N],
    [losses, logitsTeacher, logitsStudent, dlogits, weights],
    [N, V, accumulate ? 1 : 0],
  );
}
