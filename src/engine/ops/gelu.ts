/** gelu (exact erf form): GPU encode functions. Same argument order as ref/gelu.ts, with `gpu` first. */
import code from '../../../shaders/gelu.wgsl?raw';
import type { Gpu } from '../gpu/gpu.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { grid } from './residual.ts';

const WG = 256;
const fwd = { op: 'gelu', code, entry: 'gelu_forward', constants: { WG } } as const;
const bwd = { op: 'gelu', code, entry: 'gelu_backward', constants: { WG } } as const;

/** out (N) = 0.5·x·(1 + erf(x/√2)). */
export function geluForward(gpu: Gpu, out: Tensor, inp: Tensor, N: number): void {
  gpu.dispatch(fwd, grid(gpu, N, WG), [out, inp], [N]);
}

/** dinp (N) = or += (accumulate) dout · gelu'(inp). */
export function geluBackward(
  gpu: Gpu,
  dinp: Tensor,
  dout: Tensor,
  inp: Tensor,
  N: number,
  accumulate: boolean,
): void {
  gpu.dispatch(bwd, grid(gpu, N, WG), [dinp, dout, inp], [N, accumulate ? 1 : 0]);
}
