/**
 * Quantized frozen weights, CPU side: f16 <-> f32, GGUF q8_0 / q4_0 blocks (quantize and
 * dequantize exactly like llama.cpp's reference code), and the GPU layout the matmul kernels read.
 *
 * GGUF blocks (32 values each, row-major, blocks run along K):
 *   q8_0: f16 d, then 32 × int8 q                      value = q · d          (34 bytes)
 *   q4_0: f16 d, then 16 bytes; byte j holds element j in its low nibble and element j+16 in its
 *         high nibble                                  value = (q − 8) · d    (18 bytes)
 * GPU layout (`packForGpu`, sized by `byteSize` in gpu/tensor.ts): all quants first, row-major
 * (q8_0: one byte per value; q4_0: each block's 16 quant bytes in GGUF order), 4 bytes per u32
 * little-endian; then every block's f16 scale, row-major by block, two per u32 (low half first).
 *
 * @example
 *   const w = uploadWeight(gpu, 'q4_0', f32Weights, N, K, 'wq'); // quantizes, packs, uploads
 */
import { EngineError } from './errors.ts';
import type { Gpu } from './gpu/gpu.ts';
import type { Tensor } from './gpu/tensor.ts';

export type QuantDType = 'q8_0' | 'q4_0';
export const QK = 32; // values per block
/** GGUF bytes per block. */
export const BLOCK_BYTES: Record<QuantDType, number> = { q8_0: 2 + 32, q4_0: 2 + 16 };

const f32Box = new Float32Array(1);
const u32Box = new Uint32Array(f32Box.buffer);

/** f32 -> f16 bits, round to nearest even (the input is first rounded to f32). NaN stays NaN. */
export function f32ToF16(v: number): number {
  f32Box[0] = v;
  const x = u32Box[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15; // f16 biased exponent
  if (e >= 31) return sign | 0x7c00;
  if (e >= 1) {
    // normal: drop 13 mantissa bits; a carry out of the mantissa bumps the exponent (up to inf)
    const h = (e << 10) | (mant >>> 13);
    const rem = mant & 0x1fff;
    return sign | (rem > 0x1000 || (rem === 0x1000 && h & 1) ? h + 1 : h);
  }
  // subnormal f16: value / 2^-24 = (1.mant · 2^23) · 2^(exp − 126)
  const shift = 126 - exp;
  if (shift > 24) return sign; // below 2^-25: rounds to zero
  const m = mant | 0x800000;
  const h = m >>> shift;
  const rem = m & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return sign | (rem > half || (rem === half && h & 1) ? h + 1 : h);
}

/** f16 bits -> value (exact). */
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

function checkBlocks(n: number, what: string): void {
  if (n % QK !== 0) {
    throw new EngineError(
      'SHAPE_MISMATCH',
      `${what}: ${n} values is not a multiple of ${QK}; quantized weights need a row length (K) divisible by 32.`,
    );
  }
}

/** GGUF q8_0 blocks: d = amax/127, q = round(x/d) (llama.cpp quantize_row_q8_0_ref, in f32). */
export function quantizeQ8_0(w: Float32Array): Uint8Array {
  checkBlocks(w.length, 'quantizeQ8_0');
  const nb = w.length / QK;
  const out = new Uint8Array(nb * BLOCK_BYTES.q8_0);
  const q = new Int8Array(out.buffer);
  for (let i = 0; i < nb; i++) {
    let amax = 0;
    for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(w[i * QK + j]!));
    const d = Math.fround(amax / 127);
    const id = d ? Math.fround(1 / d) : 0;
    const o = i * BLOCK_BYTES.q8_0;
    const h = f32ToF16(d);
    out[o] = h & 0xff;
    out[o + 1] = h >>> 8;
    for (let j = 0; j < QK; j++) {
      const x0 = Math.fround(w[i * QK + j]! * id);
      q[o + 2 + j] = Math.sign(x0) * Math.round(Math.abs(x0)); // C roundf: halves away from zero
    }
  }
  return out;
}

/**
 * GGUF q4_0 blocks (llama.cpp quantize_row_q4_0_ref): `max` = the value with the largest |x|
 * (sign kept), d = max / −8, q = min(15, trunc(x/d + 8.5)). The extreme value lands on q = 0 exactly;
 * values of the other sign near |max| clamp to q = 15, i.e. 7·d.
 */
export function quantizeQ4_0(w: Float32Array): Uint8Array {
  checkBlocks(w.length, 'quantizeQ4_0');
  const nb = w.length / QK;
  const out = new Uint8Array(nb * BLOCK_BYTES.q4_0);
  for (let i = 0; i < nb; i++) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK; j++) {
      const v = w[i * QK + j]!;
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = Math.fround(max / -8);
    const id = d ? Math.fround(1 / d) : 0;
    const o = i * BLOCK_BYTES.q4_0;
    const h = f32ToF16(d);
    out[o] = h & 0xff;
    out[o + 1] = h >>> 8;
    for (let j = 0; j < QK / 2; j++) {
      const x0 = Math.fround(w[i * QK + j]! * id);
      const x1 = Math.fround(w[i * QK + QK / 2 + j]! * id);
      const q0 = Math.min(15, Math.trunc(Math.fround(x0 + 8.5)));
      const q1 = Math.min(15, Math.trunc(Math.fround(x1 + 8.5)));
      out[o + 2 + j] = q0 | (q1 << 4);
    }
  }
  return out;
}

export function dequantizeQ8_0(bytes: Uint8Array, n: number): Float32Array {
  checkBlocks(n, 'dequantizeQ8_0');
  const q = new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  for (let i = 0; i < n / QK; i++) {
    const o = i * BLOCK_BYTES.q8_0;
    const d = f16ToF32(bytes[o]! | (bytes[o + 1]! << 8));
    for (let j = 0; j < QK; j++) out[i * QK + j] = q[o + 2 + j]! * d;
  }
  return out;
}

export function dequantizeQ4_0(bytes: Uint8Array, n: number): Float32Array {
  checkBlocks(n, 'dequantizeQ4_0');
  const out = new Float32Array(n);
  for (let i = 0; i < n / QK; i++) {
    const o = i * BLOCK_BYTES.q4_0;
    const d = f16ToF32(bytes[o]! | (bytes[o + 1]! << 8));
    for (let j = 0; j < QK / 2; j++) {
      const b = bytes[o + 2 + j]!;
      out[i * QK + j] = ((b & 0xf) - 8) * d;
      out[i * QK + QK / 2 + j] = ((b >>> 4) - 8) * d;
    }
  }
  return out;
}

export function dequantize(dtype: QuantDType, bytes: Uint8Array, n: number): Float32Array {
  return dtype === 'q8_0' ? dequantizeQ8_0(bytes, n) : dequantizeQ4_0(bytes, n);
}

export function quantize(dtype: QuantDType, w: Float32Array): Uint8Array {
  return dtype === 'q8_0' ? quantizeQ8_0(w) : quantizeQ4_0(w);
}

/** GGUF blocks of a (rows, K) weight -> the GPU layout: quants, then f16 scales two per u32. */
export function packForGpu(dtype: QuantDType, ggufBytes: Uint8Array, rows: number, K: number): Uint32Array {
  checkBlocks(K, `packForGpu(${dtype}) K=${K}`);
  const nb = (rows * K) / QK;
  const bb = BLOCK_BYTES[dtype];
  if (ggufBytes.length !== nb * bb) {
    throw new EngineError(
      'SHAPE_MISMATCH',
      `packForGpu(${dtype}): ${ggufBytes.length} bytes for a ${rows}×${K} weight, expected ${nb * bb}. Check the tensor's shape and type in the file.`,
    );
  }
  const qBytes = bb - 2; // quant bytes per block
  const scales = nb * qBytes; // byte offset of the scales (a multiple of 16)
  const out = new Uint32Array((scales + 4 * Math.ceil(nb / 2)) / 4);
  const o8 = new Uint8Array(out.buffer);
  for (let i = 0; i < nb; i++) {
    o8.set(ggufBytes.subarray(i * bb + 2, (i + 1) * bb), i * qBytes);
    o8[scales + 2 * i] = ggufBytes[i * bb]!;
    o8[scales + 2 * i + 1] = ggufBytes[i * bb + 1]!;
  }
  return out;
}

/**
 * Creates a (rows, K) weight tensor of `dtype` on the GPU. `data`: f32 values (quantized here for
 * q types) or, for q types, GGUF block bytes as read from a file.
 */
export function uploadWeight(
  gpu: Gpu,
  dtype: 'f32' | QuantDType,
  data: Float32Array | Uint8Array,
  rows: number,
  K: number,
  label: string,
): Tensor {
  if (dtype === 'f32') {
    if (!(data instanceof Float32Array)) {
      throw new EngineError('BAD_ARGUMENT', `uploadWeight("${label}"): f32 weights take a Float32Array.`);
    }
    return gpu.fromData([rows, K], data, label);
  }
  if (data instanceof Float32Array && data.length !== rows * K) {
    throw new EngineError('SHAPE_MISMATCH', `"${label}": ${data.length} values for shape [${rows}, ${K}]`);
  }
  const bytes = data instanceof Float32Array ? quantize(dtype, data) : data;
  const packed = packForGpu(dtype, bytes, rows, K);
  const t = gpu.tensor([rows, K], label, dtype);
  gpu.upload(t, packed);
  return t;
}
