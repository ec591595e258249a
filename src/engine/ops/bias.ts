/** bias (per-feature): GPU encode functions. Same argument order as ref/bias.ts, with `gpu` first. */
import code from '../../../shaders/bias.wgsl?raw';
import type { Gpu } from '../gpu/gpu.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { grid } from './residual.ts';

const WG = 256;
const fwd = { op: 'bias', code, entry: 'bias_forward', constants: { WG } } as const;
const bwd = { op: 'bias', code, entry: 'bias_backward', constants: { WG } } as const;

/** x (N,C) += b (C) on every row, in place. */
export function biasForward(gpu: Gpu, x: Tensor, b: Tensor, N: number, C: number): void {
  gpu.dispatch(fwd, grid(gpu, N * C, WG), [x, b], [N, C]);
}

/**
 * db (C) += Σ_rows dout (N,C) (a parameter gradient: always added). Rows are summed in order by one
 * thread per column: deterministic. The input gradient is dout itself (nothing to compute).
 */
export function biasBackward(gpu: Gpu, db: Tensor, dout: Tensor, N: number, C: number): void {
  gpu.dispatch(bwd, grid(gpu, C, WG), [db, dout], [N, C]);
}
