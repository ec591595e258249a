/**
 * A GPU tensor: a (possibly pooled) buffer plus shape and dtype. Quantized weights (frozen matmul
 * weights only) keep their blocks in one buffer; the layouts are in quant.ts (q8_0, q4_0) and
 * quant-gpu.ts (q4f16_1: MLC / web-llm's 4-bit groups; q4_k, q6_k: GGUF K-quants).
 */
/**
 * 'f16': binary16 activations (two bytes each), only on devices with `shader-f16` (ops/act.ts);
 * the buffer is rounded up to whole u32 words.
 */
export type DType = 'f32' | 'f16' | 'u32' | 'i32' | 'q8_0' | 'q4_0' | 'q4f16_1' | 'q4_k' | 'q6_k';

export interface Tensor {
  readonly buffer: GPUBuffer;
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly label: string;
  /** Bytes the tensor's data occupies (the buffer may be larger when pooled). */
  readonly byteLength: number;
  /**
   * A frozen weight (N, K) larger than one binding, split by rows: each part a whole (rows, K)
   * weight in its own buffer, in row order, covering [0, N) (backend/gpu.ts `uploadWeightSplit`).
   * Only the matmuls, the embedding gather and the GPU backend's read / destroy take such a
   * tensor; its `buffer` throws (a kernel that binds it whole would read only a part).
   */
  readonly parts?: readonly TensorPart[];
}

/** Rows [row0, row0 + rows) of a split weight, as a (rows, K) tensor of the weight's dtype. */
export interface TensorPart {
  readonly row0: number;
  readonly rows: number;
  readonly tensor: Tensor;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Bytes for a tensor of this shape and dtype (quantized: rows × K, in 32-value blocks or groups;
 * 256-value super-blocks for q4_k / q6_k).
 */
export function byteSize(shape: readonly number[], dtype: DType): number {
  const n = numel(shape);
  switch (dtype) {
    case 'f32':
    case 'u32':
    case 'i32':
      return 4 * n;
    case 'f16':
      return 2 * n;
    case 'q8_0':
      return n + 4 * Math.ceil(n / 32 / 2); // int8 quants, then f16 scales packed two per u32
    case 'q4_0':
    case 'q4f16_1': // MLC's nibble words, then f16 group scales two per u32
      return n / 2 + 4 * Math.ceil(n / 32 / 2);
    case 'q4_k': // GGUF's 144-byte super-blocks as they are
      return (n / 256) * 144;
    case 'q6_k': // each super-block's first 208 bytes, then its f16 d two per u32
      return (n / 256) * 208 + 4 * Math.ceil(n / 256 / 2);
  }
}
