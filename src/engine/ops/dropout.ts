/**
 * dropout: GPU encode functions. Same argument order as ref/dropout.ts, with `gpu` first. The mask
 * comes from (seed, element index), so the backward needs the forward's seed, not a mask buffer.
 */
import code from '../../../shaders/dropout.wgsl?raw';
import { f32, type Gpu } from '../gpu/gpu.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { dropoutScale, dropoutThreshold } from '../ref/dropout.ts';
import { grid } from './residual.ts';

const WG = 256;
const fwd = { op: 'dropout', code, entry: 'dropout_forward', constants: { WG } } as const;
const bwd = { op: 'dropout', code, entry: 'dropout_backward', constants: { WG } } as const;

/** out (N) = inp · keep / (1 − p); keep drawn from (seed, i). Throws BAD_ARGUMENT unless 0 ≤ p < 1. */
export function dropoutForward(gpu: Gpu, out: Tensor, inp: Tensor, N: number, p: number, seed: number): void {
  gpu.dispatch(fwd, grid(gpu, N, WG), [out, inp], [N, dropoutThreshold(p), seed >>> 0, f32(dropoutScale(p))]);
}

/** dinp (N) = or += (accumulate) dout · keep / (1 − p), with the forward's (p, seed). */
export function dropoutBackward(
  gpu: Gpu,
  dinp: Tensor,
  dout: Tensor,
  N: number,
  p: number,
  seed: number,
  accumulate: boolean,
): void {
  gpu.dispatch(
    bwd,
    grid(gpu, N, WG),
    [dinp, dout],
    [N, dropoutThreshold(p), seed >>> 0, f32(dropoutScale(p)), accumulate ? 1 : 0],
  );
}
