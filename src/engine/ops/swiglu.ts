/** swiglu (LLaMA FFN gate): GPU encode functions. Same argument order as ref/swiglu.ts, with `gpu` first. */
import code from '../../../shaders/swiglu.wgsl?raw';
import type { Gpu } from '../gpu/gpu.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { grid } from './residual.ts';

const WG = 256;
const fwd = { op: 'swiglu', code, entry: 'swiglu_forward', constants: { WG } } as const;
const fwd4 = { op: 'swiglu', code, entry: 'swiglu_forward4', constants: { WG } } as const;
const bwd = { op: 'swiglu', code, entry: 'swiglu_backward', constants: { WG } } as const;

/** out (N) = silu(gate) · up, element-wise over N = rows · hidden (on vec4s when N % 4 == 0). */
export function swigluForward(gpu: Gpu, out: Tensor, gate: Tensor, up: Tensor, N: number): void {
  if (N % 4 === 0) gpu.dispatch(fwd4, grid(gpu, N / 4, WG), [out, gate, up], [N / 4]);
  else gpu.dispatch(fwd, grid(gpu, N, WG), [out, gate, up], [N]);
}

/** dgate, dup (N) = or += (accumulate) the gradients of out = silu(gate) · up. */
export function swigluBackward(
  gpu: Gpu,
  dgate: Tensor,
  dup: Tensor,
  dout: Tensor,
  gate: Tensor,
  up: Tensor,
  N: number,
  accumulate: boolean,
): void {
  gpu.dispatch(bwd, grid(gpu, N, WG), [dgate, dup, dout, gate, up], [N, accumulate ? 1 : 0]);
}
