/** elu (alpha = 1): GPU encode functions. Same argument order as ref/elu.ts, with `gpu` first. */
import code from '../../../shaders/elu.wgsl?raw';
import type { Gpu } from '../gpu/gpu.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { grid } from './residual.ts';

const WG = 256;
const fwd = { op: 'elu', code, entry: 'elu_forward', constants: { WG } } as const;
const bwd = { op: 'elu', code, entry: 'elu_backward', constants: { WG } } as const;

/** out (N) = x > 0 ? x : exp(x) − 1. */
export function eluForward(gpu: Gpu, out: Tensor, inp: Tensor, N: number): void {
  gpu.dispatch(fwd, grid(gpu, N, WG), [out, inp], [N]);
}

/** dinp (N) = or += (accumulate) dout · (x > 0 ? 1 : exp(x)). */
export function eluBackward(
  gpu: Gpu,
  dinp: Tensor,
  dout: Tensor,
  inp: Tensor,
  N: number,
  accumulate: boolean,
): void {
  gpu.dispatch(bwd, grid(gpu, N, WG), [dinp, dout, inp], [N, accumulate ? 1 : 0]);
}
