/**
 * Quantized frozen weights as the files store them, to the GPU: MLC's q4f16_1 (web-llm) and GGUF's
 * Q4_K / Q6_K, next to q8_0 / q4_0 of quant.ts. The matmul kernels (shaders/matmul*.wgsl with
 * shaders/matmul_quant.wgsl) dequantize these inside the kernel; the CPU backend dequantizes them
 * once (`dequantizeWeight`) to exactly the values the kernels compute with.
 *
 * What `Backend.weight(dtype, [N, K], data, label)` takes as `data` (a Uint8Array of the file's
 * bytes; or f32 values, which are quantized here first on the GPU backend):
 *   q4_k, q6_k  the GGUF tensor's bytes: N·K/256 super-blocks of 144 / 210 bytes (quant-k.ts)
 *   q4f16_1     MLC's two records of the matrix, back to back: `q_weight` (N, K/8) uint32, little
 *               endian (8 nibbles per word, low nibble first, element k in word k/8, nibble k%8),
 *               then `q_scale` (N, K/32) float16; value = (q − 7)·scale. `mlcQ4Bytes` makes it from
 *               an `MlcQ4` (readMlcQ4 / readMlcSite). K must be a multiple of 32 (no padded groups).
 *
 * GPU layouts (u32 words; `byteSize` in gpu/tensor.ts gives their sizes):
 *   q4f16_1  the file bytes themselves: N·K/8 nibble words, then the f16 scales, two per u32
 *            (low half first; a last odd one padded with zero).
 *   q4_k     the GGUF bytes themselves: a 144-byte super-block is 36 words: word 0 = d | dmin << 16,
 *            words 1–3 the 12 packed 6-bit scale/min bytes, words 4–35 the 128 quant bytes.
 *   q6_k     every super-block's first 208 bytes (ql 128, qh 64, 16 int8 scales: 52 words) for all
 *            blocks, row-major; then every block's f16 d, two per u32 (210 bytes is not word-aligned).
 *
 * @example
 *   const t = uploadWeightAny(gpu, 'q4_k', ggufTensorBytes, 4096, 4096, 'blk.0.attn_q.weight');
 *   const cpu = dequantizeWeight('q4_k', ggufTensorBytes, 4096, 4096, 'blk.0.attn_q.weight');
 */
import { EngineError } from './errors.ts';
import type { Gpu } from './gpu/gpu.ts';
import { byteSize, type DType, type Tensor } from './gpu/tensor.ts';
import {
  dequantizeMlcQ4,
  MLC_GROUP,
  mlcGroupsPerRow,
  mlcWordsPerRow,
  quantizeMlcQ4,
  type MlcQ4,
} from './io/mlc-quant.ts';
import {
  BLOCK_BYTES,
  dequantize,
  f16ToF32,
  f32ToF16,
  packForGpu,
  quantize,
  QK,
  uploadWeight,
  type QuantDType,
} from './quant.ts';
import {
  dequantizeQ4_K,
  dequantizeQ6_K,
  Q4_K_BLOCK_BYTES,
  Q6_K_BLOCK_BYTES,
  QK_K,
  quantizeQ4_K,
  quantizeQ6_K,
} from './quant-k.ts';

/** Quantized types that arrive as the files store them (no repacking to q4_0). */
export type FileQuantDType = 'q4f16_1' | 'q4_k' | 'q6_k';
/** Every dtype a frozen matmul weight may have. */
export type WeightDType = 'f32' | QuantDType | FileQuantDType;
export const WEIGHT_DTYPES: readonly WeightDType[] = ['f32', 'q8_0', 'q4_0', 'q4f16_1', 'q4_k', 'q6_k'];

export function isWeightDType(d: DType): d is WeightDType {
  return (WEIGHT_DTYPES as readonly string[]).includes(d);
}

/** Values per block (q8_0, q4_0), group (q4f16_1) or super-block (q4_k, q6_k): K must be a multiple. */
export function blockValues(dtype: Exclude<WeightDType, 'f32'>): number {
  return dtype === 'q4_k' || dtype === 'q6_k' ? QK_K : QK;
}

const NAMES: Record<Exclude<WeightDType, 'f32'>, string> = {
  q8_0: 'Q8_0',
  q4_0: 'Q4_0',
  q4f16_1: 'MLC q4f16_1',
  q4_k: 'Q4_K',
  q6_k: 'Q6_K',
};

/** Bytes of `data` for a (rows, K) weight of `dtype` as the file stores it (see the header). */
export function fileBytes(dtype: Exclude<WeightDType, 'f32'>, rows: number, K: number): number {
  const n = rows * K;
  switch (dtype) {
    case 'q8_0':
    case 'q4_0':
      return (n / QK) * BLOCK_BYTES[dtype];
    case 'q4f16_1':
      return n / 2 + 2 * (n / MLC_GROUP);
    case 'q4_k':
      return (n / QK_K) * Q4_K_BLOCK_BYTES;
    case 'q6_k':
      return (n / QK_K) * Q6_K_BLOCK_BYTES;
  }
}

/** Throws SHAPE_MISMATCH (naming the weight) unless K is a positive multiple of the dtype's block. */
export function checkWeightShape(
  dtype: Exclude<WeightDType, 'f32'>,
  rows: number,
  K: number,
  label: string,
): void {
  const bv = blockValues(dtype);
  if (!Number.isSafeInteger(rows) || !Number.isSafeInteger(K) || rows < 0 || K <= 0 || K % bv !== 0) {
    throw new EngineError(
      'SHAPE_MISMATCH',
      `weight "${label}" [${rows}, ${K}] is ${NAMES[dtype]}, whose rows must be a multiple of ${bv} values; ` +
        `this row length (K = ${K}) is not. Use a file with another quantization for this tensor, or load it as f32.`,
    );
  }
}

/**
 * Throws SHAPE_MISMATCH (naming the weight) unless K is a multiple of the dtype's block and `bytes`
 * has exactly the file size of a (rows, K) weight.
 */
export function checkWeightBytes(
  dtype: Exclude<WeightDType, 'f32'>,
  bytes: Uint8Array,
  rows: number,
  K: number,
  label: string,
): void {
  checkWeightShape(dtype, rows, K, label);
  const want = fileBytes(dtype, rows, K);
  if (bytes.byteLength !== want) {
    throw new EngineError(
      'SHAPE_MISMATCH',
      `weight "${label}": ${bytes.byteLength} bytes for a ${rows}×${K} ${NAMES[dtype]} matrix, expected ${want}. ` +
        `Check the tensor's shape and type in the file.`,
    );
  }
}

/** Little-endian u32 words of bytes [offset, offset + 4·count) (copied; any alignment). */
function words(bytes: Uint8Array, offset: number, count: number): Uint32Array {
  const out = new Uint32Array(count);
  new Uint8Array(out.buffer).set(bytes.subarray(offset, offset + 4 * count));
  return out;
}

/** q4f16_1 file bytes (q words, then f16 scales) → the GPU layout (the same, scales padded to a word). */
export function packQ4f16_1(bytes: Uint8Array, rows: number, K: number, label = 'weight'): Uint32Array {
  checkWeightBytes('q4f16_1', bytes, rows, K, label);
  const out = new Uint32Array(byteSize([rows, K], 'q4f16_1') / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

/** GGUF Q4_K bytes → the GPU layout (the same bytes: 144-byte blocks are word-aligned). */
export function packQ4_K(bytes: Uint8Array, rows: number, K: number, label = 'weight'): Uint32Array {
  checkWeightBytes('q4_k', bytes, rows, K, label);
  return words(bytes, 0, bytes.byteLength / 4);
}

/** GGUF Q6_K bytes → the GPU layout: every block's ql, qh and scales (208 bytes), then the f16 d's. */
export function packQ6_K(bytes: Uint8Array, rows: number, K: number, label = 'weight'): Uint32Array {
  checkWeightBytes('q6_k', bytes, rows, K, label);
  const nb = (rows * K) / QK_K;
  const body = Q6_K_BLOCK_BYTES - 2; // 208
  const out = new Uint32Array(byteSize([rows, K], 'q6_k') / 4);
  const o8 = new Uint8Array(out.buffer);
  const dAt = nb * body;
  for (let b = 0; b < nb; b++) {
    const s = b * Q6_K_BLOCK_BYTES;
    o8.set(bytes.subarray(s, s + body), b * body);
    o8[dAt + 2 * b] = bytes[s + body]!;
    o8[dAt + 2 * b + 1] = bytes[s + body + 1]!;
  }
  return out;
}

/** File bytes of any quantized weight dtype → its GPU layout. */
export function packWeight(
  dtype: Exclude<WeightDType, 'f32'>,
  bytes: Uint8Array,
  rows: number,
  K: number,
  label = 'weight',
): Uint32Array {
  switch (dtype) {
    case 'q8_0':
    case 'q4_0':
      checkWeightBytes(dtype, bytes, rows, K, label);
      return packForGpu(dtype, bytes, rows, K);
    case 'q4f16_1':
      return packQ4f16_1(bytes, rows, K, label);
    case 'q4_k':
      return packQ4_K(bytes, rows, K, label);
    case 'q6_k':
      return packQ6_K(bytes, rows, K, label);
  }
}

/**
 * An MLC matrix (readMlcQ4 / readMlcSite / quantizeMlcQ4) → the q4f16_1 `data` bytes. Throws
 * BAD_ARGUMENT when a scale is not an f16 value (a q4f32_1 model's bf16 scales may not be: load
 * those through mlcQ4ToQ4_0 instead) and SHAPE_MISMATCH unless cols is a multiple of 32.
 */
export function mlcQ4Bytes(m: MlcQ4, label = 'weight'): Uint8Array {
  const { rows, cols } = m;
  if (cols % MLC_GROUP !== 0 || cols <= 0) {
    throw new EngineError(
      'SHAPE_MISMATCH',
      `weight "${label}" [${rows}, ${cols}]: MLC q4f16_1 on the GPU needs rows of a multiple of 32 values (no padded groups); load this one as f32.`,
    );
  }
  const W = mlcWordsPerRow(cols);
  const G = mlcGroupsPerRow(cols);
  if (m.qWeight.length !== rows * W || m.scale.length !== rows * G) {
    throw new EngineError(
      'SHAPE_MISMATCH',
      `weight "${label}": ${m.qWeight.length} words and ${m.scale.length} scales for a ${rows}×${cols} MLC matrix, expected ${rows * W} and ${rows * G}.`,
    );
  }
  const out = new Uint8Array(4 * rows * W + 2 * rows * G);
  out.set(new Uint8Array(m.qWeight.buffer, m.qWeight.byteOffset, 4 * rows * W));
  const o = 4 * rows * W;
  for (let i = 0; i < rows * G; i++) {
    const s = m.scale[i]!;
    const h = f32ToF16(s);
    if (f16ToF32(h) !== s && !(Number.isNaN(s) && Number.isNaN(f16ToF32(h)))) {
      throw new EngineError(
        'BAD_ARGUMENT',
        `weight "${label}": scale ${i} (${s}) is not an f16 value, so this is not a q4f16_1 matrix; load a q4f32_1 model through mlcQ4ToQ4_0.`,
      );
    }
    out[o + 2 * i] = h & 0xff;
    out[o + 2 * i + 1] = h >>> 8;
  }
  return out;
}

/** The q4f16_1 `data` bytes → an MlcQ4 (scales widened to f32, exact). */
export function mlcQ4FromBytes(bytes: Uint8Array, rows: number, K: number, label = 'weight'): MlcQ4 {
  checkWeightBytes('q4f16_1', bytes, rows, K, label);
  const W = mlcWordsPerRow(K);
  const G = mlcGroupsPerRow(K);
  const qWeight = words(bytes, 0, rows * W);
  const scale = new Float32Array(rows * G);
  const o = 4 * rows * W;
  for (let i = 0; i < rows * G; i++) scale[i] = f16ToF32(bytes[o + 2 * i]! | (bytes[o + 2 * i + 1]! << 8));
  return { rows, cols: K, qWeight, scale };
}

/** f32 values → the file bytes of `dtype` (our quantizers: quant.ts, quant-k.ts, MLC's rule). */
export function quantizeWeight(
  dtype: Exclude<WeightDType, 'f32'>,
  w: Float32Array,
  rows: number,
  K: number,
  label = 'weight',
): Uint8Array {
  if (w.length !== rows * K) {
    throw new EngineError(
      'SHAPE_MISMATCH',
      `weight "${label}": ${w.length} values for shape [${rows}, ${K}].`,
    );
  }
  checkWeightShape(dtype, rows, K, label);
  switch (dtype) {
    case 'q8_0':
    case 'q4_0':
      return quantize(dtype, w);
    case 'q4f16_1':
      return mlcQ4Bytes(quantizeMlcQ4(w, rows, K, 'q4f16_1'), label);
    case 'q4_k':
      return quantizeQ4_K(w);
    case 'q6_k':
      return quantizeQ6_K(w);
  }
}

/** File bytes → the exact values the kernels multiply with (row-major rows × K). */
export function dequantizeWeight(
  dtype: Exclude<WeightDType, 'f32'>,
  bytes: Uint8Array,
  rows: number,
  K: number,
  label = 'weight',
): Float32Array {
  checkWeightBytes(dtype, bytes, rows, K, label);
  switch (dtype) {
    case 'q8_0':
    case 'q4_0':
      return dequantize(dtype, bytes, rows * K);
    case 'q4f16_1':
      return dequantizeMlcQ4(mlcQ4FromBytes(bytes, rows, K, label));
    case 'q4_k':
      return dequantizeQ4_K(bytes, rows * K);
    case 'q6_k':
      return dequantizeQ6_K(bytes, rows * K);
  }
}

/**
 * A (rows, K) frozen weight of any weight dtype on the GPU. `data`: f32 values (quantized here for
 * quantized dtypes), or the file bytes described in the header.
 */
export function uploadWeightAny(
  gpu: Gpu,
  dtype: WeightDType,
  data: Float32Array | Uint8Array,
  rows: number,
  K: number,
  label: string,
): Tensor {
  if (dtype === 'f32' || dtype === 'q8_0' || dtype === 'q4_0') {
    if (dtype !== 'f32' && data instanceof Uint8Array) checkWeightBytes(dtype, data, rows, K, label);
    return uploadWeight(gpu, dtype, data, rows, K, label);
  }
  const bytes = data instanceof Float32Array ? quantizeWeight(dtype, data, rows, K, label) : data;
  const packed = packWeight(dtype, bytes, rows, K, label);
  const t = gpu.tensor([rows, K], label, dtype);
  gpu.upload(t, packed);
  return t;
}
