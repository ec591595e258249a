/**
 * nceweights: NCE's per-sequence β and per-token weights (METHOD.md §2). GPU encode functions, same
 * argument order as ref/nceweights.ts with `gpu` first. Forward only: β comes from frozen models.
 */
import code from '../../../shaders/nceweights.wgsl?raw';
import { f32, type Gpu } from '../gpu/gpu.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { grid } from './residual.ts';

const WG = 256;
const betaK = { op: 'nceweights', code, entry: 'nceweights_beta', constants: { WG } } as const;
const weightsK = { op: 'nceweights', code, entry: 'nceweights_forward', constants: { WG } } as const;

/**
 * beta (B) = tanh(Σ_t mask·kl / Σ_t mask) per sequence (0 when no token is masked in);
 * weights (B·T) = mask · (0.5 + beta[b]) · scale. kl (B·T) is KL(p_N ‖ p_T) per token (klForward
 * with the negative model's logits first), mask (B·T) f32, 1 where the token carries the loss.
 *
 * @example
 *   klForward(gpu, kl, logitsNeg, logitsNat, B * T, V);
 *   nceWeightsForward(gpu, beta, kdWeights, kl, mask, B, T, 0.5 / lossTokens);
 *   softCrossentropyForwardBackward(gpu, kdLosses, dlogits, logitsNat, logits, kdWeights, B * T, V, true);
 */
export function nceWeightsForward(
  gpu: Gpu,
  beta: Tensor,
  weights: Tensor,
  kl: Tensor,
  mask: Tensor,
  B: number,
  T: number,
  scale: number,
): void {
  gpu.dispatch(betaK, grid(gpu, B, WG), [beta, kl, mask], [B, T, f32(scale)]);
  gpu.dispatch(weightsK, grid(gpu, B * T, WG), [weights, beta, mask], [B, T, f32(scale)]);
}
