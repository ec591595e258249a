/** embedding: GPU encode functions. Same argument order as ref/embedding.ts, with `gpu` first. */
import code from '../../../shaders/embedding.wgsl?raw';
import { EngineError } from '../errors.ts';
import type { Gpu } from '../gpu/gpu.ts';
import { numel, type DType, type Tensor } from '../gpu/tensor.ts';
import { grid } from './residual.ts';

const WG = 256;
const fwd = { op: 'embedding', code, entry: 'embedding_forward', constants: { WG } } as const;
const bwd = { op: 'embedding', code, entry: 'embedding_backward', constants: { WG } } as const;
/** Words of quants per 32-value block in the GPU layout (quant.ts): the shader's DTYPE. */
const QUANT_WORDS: Partial<Record<DType, number>> = { q8_0: 8, q4_0: 4 };

/**
 * out (N,C) = wte (V,C) rows picked by tokens (N, u32); every token must be < V. `wte` is f32, or a
 * frozen q8_0 / q4_0 table (`be.weight`, C a multiple of 32) whose rows are dequantized while
 * gathering: the same values as the CPU reference on the dequantized table.
 */
export function embeddingForward(
  gpu: Gpu,
  out: Tensor,
  tokens: Tensor,
  wte: Tensor,
  N: number,
  C: number,
): void {
  if (wte.dtype === 'f32') {
    gpu.dispatch(fwd, grid(gpu, N * C, WG), [out, tokens, wte], [N, C]);
    return;
  }
  const DTYPE = QUANT_WORDS[wte.dtype];
  if (DTYPE === undefined) {
    throw new EngineError(
      'BAD_ARGUMENT',
      `embeddingForward: table "${wte.label}" has dtype ${wte.dtype}; an embedding table is f32, q8_0 or q4_0 (load K-quant tables requantized to q8_0).`,
    );
  }
  const n = numel(wte.shape);
  if (C % 32 !== 0 || n % C !== 0) {
    throw new EngineError(
      'SHAPE_MISMATCH',
      `embeddingForward: ${wte.dtype} table "${wte.label}" [${wte.shape.join(', ')}] does not have rows of C = ${C} values with C a multiple of 32.`,
    );
  }
  const spec = {
    op: 'embedding',
    code,
    entry: 'embedding_forward_q',
    constants: { WG, DTYPE },
  } as const;
  gpu.dispatch(spec, grid(gpu, N * C, WG), [out, tokens, wte], [N, C, n / C]);
}

/**
 * dwte (V,C) += dout rows scattered by tokens; deterministic (no atomics); tokens ≥ V are skipped.
 * f32 tables only: a quantized table is frozen and has no gradient.
 */
export function embeddingBackward(
  gpu: Gpu,
  dwte: Tensor,
  dout: Tensor,
  tokens: Tensor,
  N: number,
  C: number,
  V: number,
): void {
  if (dwte.dtype !== 'f32') {
    throw new EngineError(
      'BAD_ARGUMENT',
      `embeddingBackward: "${dwte.label}" is ${dwte.dtype}; a quantized embedding table is frozen (train adapters, not the table).`,
    );
  }
  gpu.dispatch(bwd, grid(gpu, N * C, WG), [dwte, dout, tokens], [N, C, V]);
}
