/** meanpool (masked mean over tokens): GPU encode functions. Same argument order as ref/meanpool.ts, with `gpu` first. */
import code from '../../../shaders/meanpool.wgsl?raw';
import type { Gpu } from '../gpu/gpu.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { grid } from './residual.ts';

const WG = 256;
const fwd = { op: 'meanpool', code, entry: 'meanpool_forward', constants: { WG } } as const;
const bwd = { op: 'meanpool', code, entry: 'meanpool_backward', constants: { WG } } as const;

/** out (B,C) = Σ_t mask·inp / max(1, Σ_t mask); inp (B,T,C), mask (B,T) f32 of 0/1. */
export function meanpoolForward(
  gpu: Gpu,
  out: Tensor,
  inp: Tensor,
  mask: Tensor,
  B: number,
  T: number,
  C: number,
): void {
  gpu.dispatch(fwd, grid(gpu, B * C, WG), [out, inp, mask], [B, T, C]);
}

/** dinp (B,T,C) = or += (accumulate) mask · dout / max(1, Σ_t mask). */
export function meanpoolBackward(
  gpu: Gpu,
  dinp: Tensor,
  dout: Tensor,
  mask: Tensor,
  B: number,
  T: number,
  C: number,
  accumulate: boolean,
): void {
  gpu.dispatch(bwd, grid(gpu, B * C, WG), [dinp, dout, mask], [B, T, C, accumulate ? 1 : 0]);
}
