/**
 * unlikelihood: token-level unlikelihood loss for the UL baseline (METHOD.md §4). GPU encode
 * functions, same argument order as ref/unlikelihood.ts with `gpu` first.
 */
import code from '../../../shaders/unlikelihood.wgsl?raw';
import type { Gpu } from '../gpu/gpu.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { grid } from './residual.ts';

const WG = 256;
const fwd = { op: 'unlikelihood', code, entry: 'unlikelihood_forward', constants: { WG } } as const;
const fwdBwd = {
  op: 'unlikelihood',
  code,
  entry: 'unlikelihood_forward_backward',
  constants: { WG },
} as const;

/**
 * losses (N) = −log(max(1 − p_y, 1e-5)) per row (unweighted), p = softmax(logits), y = targets[n]
 * (u32; a target ≥ V gives loss 0 and no gradient). 1 − p_y is computed as Σ_{v≠y} e^z / Σ_v e^z,
 * exact where p_y rounds to 1. When dlogits is given: dlogits (N,V) = or += (accumulate)
 * weights[n] · p_y(δ_vy − p_v)/(1 − p_y); the gradient is 0 where the clamp is active
 * (1 − p_y < 1e-5) and where weights[n] = 0. Without dlogits the weights are not read.
 *
 * @example
 *   crossentropyForwardBackward(gpu, ceLosses, dlogits, logits, posTargets, ceWeights, N, V);
 *   unlikelihoodForwardBackward(gpu, ulLosses, dlogits, logits, negTargets, ulWeights, N, V, true);
 */
export function unlikelihoodForwardBackward(
  gpu: Gpu,
  losses: Tensor,
  dlogits: Tensor | null,
  logits: Tensor,
  targets: Tensor,
  weights: Tensor,
  N: number,
  V: number,
  accumulate: boolean,
): void {
  if (!dlogits) {
    gpu.dispatch(fwd, grid(gpu, N, 1), [losses, logits, targets], [N, V, 0]);
    return;
  }
  gpu.dispatch(
    fwdBwd,
    grid(gpu, N, 1),
    [losses, logits, targets, dlogits, weights],
    [N, V, accumulate ? 1 : 0],
  );
}
