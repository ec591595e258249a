/**
 * natmix: the mixing core of NAT's integration unit (METHOD.md §1). GPU encode functions, same
 * argument order as ref/natmix.ts with `gpu` first. The row kernels come in two variants (see
 * `rowVariant`): a workgroup per row on GPUs, a thread per row without barriers on CPU
 * implementations; both compute the same thing.
 */
import code from '../../../shaders/natmix.wgsl?raw';
import type { Gpu } from '../gpu/gpu.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { grid } from './residual.ts';
import { rowVariant, type RowVariant } from './rmsnorm.ts';

const WG = 64;
const spec = (entry: string) => ({ op: 'natmix', code, entry, constants: { WG } }) as const;
const fwd = spec('natmix_forward');
const fwdSerial = spec('natmix_forward_serial');
const bwdK = spec('natmix_backward_k');
const bwdKSerial = spec('natmix_backward_k_serial');
const bwdQ = spec('natmix_backward_q');
const bwdQSerial = spec('natmix_backward_q_serial');
const bwdV = spec('natmix_backward_v');

/**
 * Per row: e_pos = q·kpos, e_neg = q·kneg; alpha = sigmoid(e_neg − e_pos) − 0.5 ∈ (−0.5, 0.5);
 * out = base + (1 − alpha)·vpos + alpha·vneg. q, kpos, kneg (N,U); vpos, vneg, base, out (N,C);
 * alpha (N), kept for the backward (and the UI's mean α). out may not alias an input.
 */
export function natmixForward(
  gpu: Gpu,
  out: Tensor,
  alpha: Tensor,
  q: Tensor,
  kpos: Tensor,
  kneg: Tensor,
  vpos: Tensor,
  vneg: Tensor,
  base: Tensor,
  N: number,
  U: number,
  C: number,
  variant: RowVariant = rowVariant(gpu),
): void {
  const bindings = [out, alpha, q, kpos, kneg, vpos, vneg, base];
  if (variant === 'serial') gpu.dispatch(fwdSerial, grid(gpu, N, WG), bindings, [N, U, C, 0]);
  else gpu.dispatch(fwd, grid(gpu, N, 1), bindings, [N, U, C, 0]);
}

/**
 * Gradients of natmixForward, written (accumulate false) or added (true) for all five outputs:
 * dα = Σ_c dout·(vneg − vpos), g = dα·a(1 − a) with a = 0.5 + alpha; dq = g·(kneg − kpos),
 * dkpos = −g·q, dkneg = g·q, dvpos = (1 − alpha)·dout, dvneg = alpha·dout. The gradient of base
 * is dout itself: the caller passes dout on (no kernel here).
 */
export function natmixBackward(
  gpu: Gpu,
  dq: Tensor,
  dkpos: Tensor,
  dkneg: Tensor,
  dvpos: Tensor,
  dvneg: Tensor,
  dout: Tensor,
  q: Tensor,
  kpos: Tensor,
  kneg: Tensor,
  vpos: Tensor,
  vneg: Tensor,
  alpha: Tensor,
  N: number,
  U: number,
  C: number,
  accumulate: boolean,
  variant: RowVariant = rowVariant(gpu),
): void {
  const params = [N, U, C, accumulate ? 1 : 0];
  const serial = variant === 'serial';
  const rows = serial ? grid(gpu, N, WG) : grid(gpu, N, 1);
  gpu.dispatch(serial ? bwdKSerial : bwdK, rows, [dkpos, dkneg, dout, vpos, vneg, alpha, q], params);
  gpu.dispatch(serial ? bwdQSerial : bwdQ, rows, [dq, kpos, dout, vpos, vneg, alpha, kneg], params);
  gpu.dispatch(bwdV, grid(gpu, N * C, WG), [dvpos, dvneg, dout, alpha], params);
}
