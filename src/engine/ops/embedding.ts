/** embedding: GPU encode functions. Same argument order as ref/embedding.ts, with `gpu` first. */
import code from '../../../shaders/embedding.wgsl?raw';
import type { Gpu } from '../gpu/gpu.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { grid } from './residual.ts';

const WG = 256;
const fwd = { op: 'embedding', code, entry: 'embedding_forward', constants: { WG } } as const;
const bwd = { op: 'embedding', code, entry: 'embedding_backward', constants: { WG } } as const;

/** out (N,C) = wte (V,C) rows picked by tokens (N, u32); every token must be < V. */
export function embeddingForward(
  gpu: Gpu,
  out: Tensor,
  tokens: Tensor,
  wte: Tensor,
  N: number,
  C: number,
): void {
  gpu.dispatch(fwd, grid(gpu, N * C, WG), [out, tokens, wte], [N, C]);
}

/** dwte (V,C) += dout rows scattered by tokens; deterministic (no atomics); tokens ≥ V are skipped. */
export function embeddingBackward(
  gpu: Gpu,
  dwte: Tensor,
  dout: Tensor,
  tokens: Tensor,
  N: number,
  C: number,
  V: number,
): void {
  gpu.dispatch(bwd, grid(gpu, N * C, WG), [dwte, dout, tokens], [N, C, V]);
}
