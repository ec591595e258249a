/**
 * embedding: GPU encode functions. Same argument order as ref/embedding.ts, with `gpu` first.
 * A table larger than one binding arrives split by rows (`Tensor.parts`, backend/gpu.ts
 * `uploadWeightSplit`): one dispatch per part of the same kernel that gathers from a whole table
 * (shaders/embedding.wgsl, given the part's row range), each writing the rows of the tokens that
 * fall in its range and skipping the others.
 */
import embeddingWgsl from '../../../shaders/embedding.wgsl?raw';
import f16Wgsl from '../../../shaders/f16.wgsl?raw';
import { EngineError } from '../errors.ts';
import type { Gpu } from '../gpu/gpu.ts';
import type { KernelSpec } from '../gpu/pipelines.ts';
import { numel, type DType, type Tensor, type TensorPart } from '../gpu/tensor.ts';
import { grid } from './residual.ts';

const WG = 256;
const code = `${f16Wgsl}\n${embeddingWgsl}`;
const fwd = { op: 'embedding', code, entry: 'embedding_forward', constants: { WG } } as const;
const bwd = { op: 'embedding', code, entry: 'embedding_backward', constants: { WG } } as const;
/** Words of quants per 32-value block in the GPU layout (quant.ts): the shader's DTYPE. */
const QUANT_WORDS: Partial<Record<DType, number>> = { q8_0: 8, q4_0: 4 };

/**
 * out (N,C) = wte (V,C) rows picked by tokens (N, u32); every token must be < V (a larger one
 * leaves its row of out unwritten). `wte` is f32, or a frozen q8_0 / q4_0 table (`be.weight`, C a
 * multiple of 32) whose rows are dequantized while gathering: the same values as the CPU reference
 * on the dequantized table.
 */
export function embeddingForward(
  gpu: Gpu,
  out: Tensor,
  tokens: Tensor,
  wte: Tensor,
  N: number,
  C: number,
): void {
  const DTYPE = wte.dtype === 'f32' ? 0 : quantTable(wte, C);
  const spec: KernelSpec =
    DTYPE === 0 ? fwd : { op: 'embedding', code, entry: 'embedding_forward_q', constants: { WG, DTYPE } };
  const parts = wte.parts
    ? checkParts(wte, wte.parts, C)
    : [{ row0: 0, rows: numel(wte.shape) / C, tensor: wte }];
  // any order gives the same result (each token is in one part); last part first, so that a part
  // that wrote rows of tokens outside its range would not be overwritten and would fail the tests
  for (const p of [...parts].reverse())
    gpu.dispatch(spec, grid(gpu, N * C, WG), [out, tokens, p.tensor], [N, C, p.row0, p.rows]);
}

/** The shader's DTYPE of a quantized table; throws for other dtypes and rows that are not C values. */
function quantTable(wte: Tensor, C: number): number {
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
  return DTYPE;
}

/** `parts`, after checking that they are (rows, C) tables of wte's dtype covering its rows in order. */
function checkParts(wte: Tensor, parts: readonly TensorPart[], C: number): readonly TensorPart[] {
  const V = numel(wte.shape) / C;
  let row = 0;
  for (const p of parts) {
    if (p.row0 !== row || p.tensor.dtype !== wte.dtype || numel(p.tensor.shape) !== p.rows * C) {
      throw new EngineError(
        'SHAPE_MISMATCH',
        `embeddingForward: part "${p.tensor.label}" of the split table "${wte.label}" is not rows [${row}, …) of a table with rows of C = ${C} values.`,
      );
    }
    row += p.rows;
  }
  if (row !== V) {
    throw new EngineError(
      'SHAPE_MISMATCH',
      `embeddingForward: the parts of the split table "${wte.label}" hold ${row} rows, not ${V}.`,
    );
  }
  return parts;
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
  if (dwte.parts) {
    throw new EngineError(
      'BAD_ARGUMENT',
      `embeddingBackward: "${dwte.label}" is split across ${dwte.parts.length} buffers; only frozen tables are split, a trained one must fit one binding.`,
    );
  }
  if (dwte.dtype !== 'f32') {
    throw new EngineError(
      'BAD_ARGUMENT',
      `embeddingBackward: "${dwte.label}" is ${dwte.dtype}; a quantized embedding table is frozen (train adapters, not the table).`,
    );
  }
  gpu.dispatch(bwd, grid(gpu, N * C, WG), [dwte, dout, tokens], [N, C, V]);
}
