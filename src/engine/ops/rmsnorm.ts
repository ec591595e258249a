/** rmsnorm: GPU encode functions. Same argument order as ref/rmsnorm.ts, with `gpu` first. */
import code from '../../../shaders/rmsnorm.wgsl?raw';
import { f32, type Gpu } from '../gpu/gpu.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { actOf, needF16, typed } from './act.ts';

const WG = 64;
/**
 * Threads per row of the parallel forward. 256, not 64: at decode a norm is one row per sequence,
 * one workgroup each, so the row's 4096 values and the reduction's steps are all the latency there
 * is (`npm run bench -- --only rmsnorm` times both).
 */
export const RMSNORM_ROW_WG = 256;
const F32 = { OUT_T: 'f32' } as const;
const fwd = { op: 'rmsnorm', code, entry: 'rmsnorm_forward' } as const;
const fwdSerial = { op: 'rmsnorm', code, entry: 'rmsnorm_forward_serial', constants: { WG } } as const;
const fwdSerial4 = { op: 'rmsnorm', code, entry: 'rmsnorm_forward_serial4', constants: { WG } } as const;

/**
 * 'parallel': a workgroup per row (GPUs); 'serial': a thread per row, no barrier (CPU
 * implementations). Forward and the input gradient; the weight gradient is a thread per column.
 */
export type RowVariant = 'parallel' | 'serial';
export function rowVariant(gpu: Gpu): RowVariant {
  return gpu.info.software ? 'serial' : 'parallel';
}
const bwd = typed({ op: 'rmsnorm', code, entry: 'rmsnorm_backward', constants: { WG } }, F32);
const bwdSerial = typed({ op: 'rmsnorm', code, entry: 'rmsnorm_backward_serial', constants: { WG } }, F32);
const bwdW = typed({ op: 'rmsnorm', code, entry: 'rmsnorm_backward_weight', constants: { WG } }, F32);

/**
 * out (N,C) = inp / rms(inp) * weight; rstd (N) saved for the backward. `out` may be f16
 * (ops/act.ts). `rowWg`: the parallel variant's threads per row (a power of two, ≤ 256).
 */
export function rmsnormForward(
  gpu: Gpu,
  out: Tensor,
  rstd: Tensor,
  inp: Tensor,
  weight: Tensor,
  N: number,
  C: number,
  eps: number,
  variant: RowVariant = rowVariant(gpu),
  rowWg = RMSNORM_ROW_WG,
): void {
  const types = { OUT_T: actOf(out, 'rmsnormForward') };
  needF16(gpu.info.f16, [types.OUT_T], 'rmsnormForward');
  if (variant === 'serial')
    gpu.dispatch(
      typed(C % 4 === 0 ? fwdSerial4 : fwdSerial, types),
      [Math.ceil(N / WG)],
      [out, rstd, inp, weight],
      [N, C, f32(eps)],
    );
  else
    gpu.dispatch(
      typed({ ...fwd, constants: { WG: rowWg } }, types),
      [N],
      [out, rstd, inp, weight],
      [N, C, f32(eps)],
    );
}

/** dinp (N,C) = or += (accumulate) the input gradient; dweight (C) += when given. */
export function rmsnormBackward(
  gpu: Gpu,
  dinp: Tensor,
  dweight: Tensor | null,
  dout: Tensor,
  inp: Tensor,
  weight: Tensor,
  rstd: Tensor,
  N: number,
  C: number,
  accumulate: boolean,
  variant: RowVariant = rowVariant(gpu),
): void {
  const params = [N, C, accumulate ? 1 : 0];
  if (variant === 'serial')
    gpu.dispatch(bwdSerial, [Math.ceil(N / WG)], [dinp, dout, inp, weight, rstd], params);
  else gpu.dispatch(bwd, [N], [dinp, dout, inp, weight, rstd], params);
  if (dweight) gpu.dispatch(bwdW, [Math.ceil(C / WG)], [dweight, dout, inp, rstd], [N, C]);
}
