/**
 * crossentropy: the fused classifier loss (loss and dlogits in one pass, as in llm.c). Same argument
 * order as ref/crossentropy.ts, with `gpu` first.
 */
import code from '../../../shaders/crossentropy.wgsl?raw';
import type { Gpu } from '../gpu/gpu.ts';
import type { Tensor } from '../gpu/tensor.ts';

const WG = 256;
const fwd = { op: 'crossentropy', code, entry: 'crossentropy_forward', constants: { WG } } as const;
const fwdBwd = {
  op: 'crossentropy',
  code,
  entry: 'crossentropy_forward_backward',
  constants: { WG },
} as const;

/** losses (N) = −log softmax(logits)[target] per row; targets (N) u32; a target ≥ V gives loss 0. */
export function crossentropyForward(
  gpu: Gpu,
  losses: Tensor,
  logits: Tensor,
  targets: Tensor,
  N: number,
  V: number,
): void {
  gpu.dispatch(fwd, [N], [losses, logits, targets], [N, V]);
}

/**
 * losses (N) as crossentropyForward (unweighted: per-token losses to read back) and, when dlogits is
 * given, dlogits (N,V) = weights[n] · (softmax − onehot(target)), written (not added). Put the
 * loss scale in weights (e.g. 1/num_loss_tokens; 0 masks a row: its dlogits are 0). Without dlogits
 * the weights are not read.
 *
 * @example
 *   crossentropyForwardBackward(gpu, losses, dlogits, logits, targets, weights, B * T, V);
 */
export function crossentropyForwardBackward(
  gpu: Gpu,
  losses: Tensor,
  dlogits: Tensor | null,
  logits: Tensor,
  targets: Tensor,
  weights: Tensor,
  N: number,
  V: number,
): void {
  if (!dlogits) return crossentropyForward(gpu, losses, logits, targets, N, V);
  gpu.dispatch(fwdBwd, [N], [losses, logits, targets, dlogits, weights], [N, V]);
}
