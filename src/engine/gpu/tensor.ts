/**
 * A GPU tensor: a (possibly pooled) buffer plus shape and dtype. Quantized weights keep their
 * blocks in one buffer: all quant words first, then the f16 block scales (see quant.ts).
 */
export type DType = 'f32' | 'u32' | 'i32' | 'q8_0' | 'q4_0';

export interface Tensor {
  readonly buffer: GPUBuffer;
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly label: string;
  /** Bytes the tensor's data occupies (the buffer may be larger when pooled). */
  readonly byteLength: number;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Bytes for a tensor of this shape and dtype (quantized: rows × K, 32-value blocks). */
export function byteSize(shape: readonly number[], dtype: DType): number {
  const n = numel(shape);
  switch (dtype) {
    case 'f32':
    case 'u32':
    case 'i32':
      return 4 * n;
    case 'q8_0':
      return n + 4 * Math.ceil(n / 32 / 2); // int8 quants, then f16 scales packed two per u32
    case 'q4_0':
      return n / 2 + 4 * Math.ceil(n / 32 / 2);
  }
}
