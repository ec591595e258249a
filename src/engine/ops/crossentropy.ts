/**
 * crossentropy: the fused classifier loss (loss and dlogits in one pass, as in llm.c). Same argument
 * order as ref/crossentropy.ts, with `gpu` first.
 */
import code from '../../../shaders/crossentropy.wgsl?raw';
import type { Gpu } from '../gpu/gpu.ts';
import type { KernelSpec } from '../gpu/pipelines.ts';
import type { Tensor } from '../gpu/tensor.ts';

const WG = 256;

/**
 * 'parallel': a workgroup per row, a barrier reduction over the vocabulary (GPUs). 'serial': a
 * thread per row, no barrier (software GPUs, where a barrier is a fiber switch), one exp per logit.
 */
export type CrossentropyVariant = 'parallel' | 'serial';
export function crossentropyVariant(gpu: Gpu): CrossentropyVariant {
  return gpu.info.software ? 'serial' : 'parallel';
}
const SERIAL_WG = 16;

/** The kernel `entry` for N rows in `variant`, and its grid. */
function kernel(
  gpu: Gpu,
  entry: string,
  variant: CrossentropyVariant,
  N: number,
): [KernelSpec, [number, number]] {
  if (variant === 'parallel') return [{ op: 'crossentropy', code, entry, constants: { WG } }, [N, 1]];
  const groups = Math.ceil(N / SERIAL_WG);
  const x = Math.min(groups, gpu.limits.maxComputeWorkgroupsPerDimension ?? 65535);
  const spec = { op: 'crossentropy', code, entry: `${entry}_serial`, constants: { WG: SERIAL_WG } };
  return [spec, [x, x === 0 ? 0 : Math.ceil(groups / x)]];
}

/** losses (N) = −log softmax(logits)[target] per row; targets (N) u32; a target ≥ V gives loss 0. */
export function crossentropyForward(
  gpu: Gpu,
  losses: Tensor,
  logits: Tensor,
  targets: Tensor,
  N: number,
  V: number,
  variant: CrossentropyVariant = crossentropyVariant(gpu),
): void {
  const [spec, grid] = kernel(gpu, 'crossentropy_forward', variant, N);
  gpu.dispatch(spec, grid, [losses, logits, targets], [N, V]);
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
  variant: CrossentropyVariant = crossentropyVariant(gpu),
): void {
  if (!dlogits) return crossentropyForward(gpu, losses, logits, targets, N, V, variant);
  const [spec, grid] = kernel(gpu, 'crossentropy_forward_backward', variant, N);
  gpu.dispatch(spec, grid, [losses, logits, targets, dlogits, weights], [N, V]);
}
