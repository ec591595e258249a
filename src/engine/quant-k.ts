/**
 * GGUF K-quants, CPU side: Q4_K and Q6_K super-blocks of 256 values, dequantized exactly like ggml's
 * reference (`dequantize_row_q4_K`, `dequantize_row_q6_K` in ggml's src/ggml-quants.c; block structs
 * `block_q4_K`, `block_q6_K` in src/ggml-common.h), and a straightforward quantizer of our own (not
 * llama.cpp's error-minimizing search) whose error bound is stated below and in docs/gguf.md.
 *
 * Q4_K (144 bytes; 8 sub-blocks of 32 values):
 *   f16 d | f16 dmin | 12 bytes: eight 6-bit scales sc[j] and eight 6-bit mins m[j] | 128 bytes quants
 *   scale bytes: for j < 4: sc[j] = s[j] & 63, m[j] = s[j+4] & 63;
 *                for j ≥ 4: sc[j] = (s[j+4] & 15) | (s[j−4] >> 6) << 4, m[j] = (s[j+4] >> 4) | (s[j] >> 6) << 4
 *   quants: 4 groups of 64 values, 32 bytes each; byte l of group g holds value 64g+l in its low nibble
 *   (sub-block 2g) and value 64g+32+l in its high nibble (sub-block 2g+1).
 *   value = (d·sc[j])·q − (dmin·m[j]), q ∈ [0, 15]
 * Q6_K (210 bytes; 16 sub-blocks of 16 values):
 *   128 bytes ql (low 4 bits) | 64 bytes qh (high 2 bits) | 16 × int8 scales | f16 d
 *   two halves of 128 values (ql += 64, qh += 32, scales += 8 per half); in a half, for l < 32:
 *   value l uses ql[l] low nibble and qh[l] bits 0–1, value 32+l ql[32+l] low and qh[l] bits 2–3,
 *   value 64+l ql[l] high and qh[l] bits 4–5, value 96+l ql[32+l] high and qh[l] bits 6–7;
 *   value = (d·sc[j])·(q − 32), q ∈ [0, 63], j = the value's index in the block / 16.
 * All arithmetic is float32 as in C: every product above is exact in f32 (an f16 times a small
 * integer), so only Q4_K's final subtraction rounds, and `Math.fround` reproduces it bit for bit.
 *
 * @example
 *   const bytes = quantizeQ4_K(w); // w.length a multiple of 256
 *   const back = dequantizeQ4_K(bytes, w.length);
 */
import { EngineError } from './errors.ts';
import { f16ToF32, f32ToF16 } from './quant.ts';

/** Values per super-block. */
export const QK_K = 256;
export const Q4_K_BLOCK_BYTES = 2 + 2 + 12 + QK_K / 2; // 144
export const Q6_K_BLOCK_BYTES = QK_K / 2 + QK_K / 4 + QK_K / 16 + 2; // 210

const fround = Math.fround;

function checkCount(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0 || n % QK_K !== 0) {
    throw new EngineError(
      'SHAPE_MISMATCH',
      `${what}: ${n} values is not a multiple of ${QK_K}; K-quant tensors need a row length (K) divisible by 256.`,
    );
  }
}

function checkBytes(bytes: Uint8Array, n: number, blockBytes: number, what: string): void {
  checkCount(n, what);
  const want = (n / QK_K) * blockBytes;
  if (bytes.byteLength !== want) {
    throw new EngineError(
      'SHAPE_MISMATCH',
      `${what}: ${bytes.byteLength} bytes for ${n} values, expected ${want} (${n / QK_K} blocks of ${blockBytes}). Check the tensor's shape and type.`,
    );
  }
}

function checkFinite(w: Float32Array, what: string): void {
  for (let i = 0; i < w.length; i++) {
    if (!Number.isFinite(w[i]!)) {
      throw new EngineError(
        'BAD_ARGUMENT',
        `${what}: value ${i} is ${w[i]}; only finite weights can be quantized.`,
      );
    }
  }
}

/** The smallest f16 ≥ v (v ≥ 0, finite), as bits. Throws when v is beyond f16's range. */
function f16Up(v: number, what: string): number {
  let h = f32ToF16(v);
  if (f16ToF32(h) < v) h++;
  if (h >= 0x7c00) {
    throw new EngineError(
      'BAD_ARGUMENT',
      `${what}: a block's scale (${v}) does not fit in an f16 (max 65504); the weights are far too large for this format.`,
    );
  }
  return h;
}

/** Sub-block j's 6-bit scale and min from the 12 packed bytes at s[o…o+11] (ggml get_scale_min_k4). */
function scaleMin(s: Uint8Array, o: number, j: number): [number, number] {
  if (j < 4) return [s[o + j]! & 63, s[o + j + 4]! & 63];
  return [
    (s[o + j + 4]! & 0xf) | ((s[o + j - 4]! >> 6) << 4),
    (s[o + j + 4]! >> 4) | ((s[o + j]! >> 6) << 4),
  ];
}

export function dequantizeQ4_K(bytes: Uint8Array, n: number): Float32Array {
  checkBytes(bytes, n, Q4_K_BLOCK_BYTES, 'dequantizeQ4_K');
  const out = new Float32Array(n);
  for (let b = 0; b < n / QK_K; b++) {
    const o = b * Q4_K_BLOCK_BYTES;
    const d = f16ToF32(bytes[o]! | (bytes[o + 1]! << 8));
    const dmin = f16ToF32(bytes[o + 2]! | (bytes[o + 3]! << 8));
    for (let g = 0; g < 4; g++) {
      const [sc0, m0] = scaleMin(bytes, o + 4, 2 * g);
      const [sc1, m1] = scaleMin(bytes, o + 4, 2 * g + 1);
      const d0 = fround(d * sc0);
      const min0 = fround(dmin * m0);
      const d1 = fround(d * sc1);
      const min1 = fround(dmin * m1);
      const q = o + 16 + 32 * g;
      const y = b * QK_K + 64 * g;
      for (let l = 0; l < 32; l++) {
        const byte = bytes[q + l]!;
        out[y + l] = fround(d0 * (byte & 0xf) - min0);
        out[y + 32 + l] = fround(d1 * (byte >> 4) - min1);
      }
    }
  }
  return out;
}

export function dequantizeQ6_K(bytes: Uint8Array, n: number): Float32Array {
  checkBytes(bytes, n, Q6_K_BLOCK_BYTES, 'dequantizeQ6_K');
  const sc = new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  for (let b = 0; b < n / QK_K; b++) {
    const o = b * Q6_K_BLOCK_BYTES;
    const d = f16ToF32(bytes[o + 208]! | (bytes[o + 209]! << 8));
    for (let half = 0; half < 2; half++) {
      const ql = o + 64 * half;
      const qh = o + 128 + 32 * half;
      const s = o + 192 + 8 * half;
      const y = b * QK_K + 128 * half;
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const h = bytes[qh + l]!;
        const lo = bytes[ql + l]!;
        const hi = bytes[ql + 32 + l]!;
        out[y + l] = fround(fround(d * sc[s + is]!) * (((lo & 0xf) | ((h & 3) << 4)) - 32));
        out[y + 32 + l] = fround(fround(d * sc[s + is + 2]!) * (((hi & 0xf) | (((h >> 2) & 3) << 4)) - 32));
        out[y + 64 + l] = fround(fround(d * sc[s + is + 4]!) * (((lo >> 4) | (((h >> 4) & 3) << 4)) - 32));
        out[y + 96 + l] = fround(fround(d * sc[s + is + 6]!) * (((hi >> 4) | (((h >> 6) & 3) << 4)) - 32));
      }
    }
  }
  return out;
}

/**
 * Q4_K blocks, our quantizer. Per sub-block j of 32 values: lo = min(0, min x), hi = max x; the min
 * offset must cover −lo and the step must cover hi from there, both rounded UP to the 6-bit grid:
 *   dmin = the smallest f16 ≥ max_j(−lo_j)/63, m_j = ceil(−lo_j/dmin), M_j = dmin·m_j ≥ −lo_j
 *   d    = the smallest f16 ≥ max_j((hi_j + M_j)/15)/63, sc_j = ceil(((hi_j + M_j)/15)/d)
 *   q    = clamp(round((x + M_j)/(d·sc_j)), 0, 15)
 * so every x lies on the 16-level grid's span and |x − x̂| ≤ d·sc_j/2 < (hi_j − lo_j + dmin)/30 + d/2
 * (plus float32 rounding of x̂). Throws SHAPE_MISMATCH unless w.length is a multiple of 256.
 */
export function quantizeQ4_K(w: Float32Array): Uint8Array {
  checkCount(w.length, 'quantizeQ4_K');
  checkFinite(w, 'quantizeQ4_K');
  const nb = w.length / QK_K;
  const out = new Uint8Array(nb * Q4_K_BLOCK_BYTES);
  const offs = new Float64Array(8);
  const his = new Float64Array(8);
  const need = new Float64Array(8);
  const mq = new Uint8Array(8);
  const sq = new Uint8Array(8);
  for (let b = 0; b < nb; b++) {
    const x0 = b * QK_K;
    let maxOff = 0;
    for (let j = 0; j < 8; j++) {
      let lo = 0;
      let hi = -Infinity;
      for (let l = 0; l < 32; l++) {
        const v = w[x0 + 32 * j + l]!;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      offs[j] = -lo;
      his[j] = hi;
      if (-lo > maxOff) maxOff = -lo;
    }
    const dminH = maxOff > 0 ? f16Up(maxOff / 63, 'quantizeQ4_K') : 0;
    const dmin = f16ToF32(dminH);
    let maxNeed = 0;
    for (let j = 0; j < 8; j++) {
      mq[j] = dmin > 0 ? Math.min(63, Math.ceil(offs[j]! / dmin)) : 0;
      need[j] = Math.max(0, (his[j]! + fround(dmin * mq[j]!)) / 15);
      if (need[j]! > maxNeed) maxNeed = need[j]!;
    }
    const dH = maxNeed > 0 ? f16Up(maxNeed / 63, 'quantizeQ4_K') : 0;
    const d = f16ToF32(dH);
    for (let j = 0; j < 8; j++) sq[j] = d > 0 ? Math.min(63, Math.ceil(need[j]! / d)) : 0;

    const o = b * Q4_K_BLOCK_BYTES;
    out[o] = dH & 0xff;
    out[o + 1] = dH >> 8;
    out[o + 2] = dminH & 0xff;
    out[o + 3] = dminH >> 8;
    for (let j = 0; j < 4; j++) {
      out[o + 4 + j] = sq[j]! | ((sq[j + 4]! >> 4) << 6);
      out[o + 8 + j] = mq[j]! | ((mq[j + 4]! >> 4) << 6);
      out[o + 12 + j] = (sq[j + 4]! & 0xf) | ((mq[j + 4]! & 0xf) << 4);
    }
    for (let j = 0; j < 8; j++) {
      const step = fround(d * sq[j]!);
      const off = fround(dmin * mq[j]!);
      const q = o + 16 + 32 * (j >> 1);
      const shift = 4 * (j & 1); // even sub-blocks in the low nibbles, odd in the high
      for (let l = 0; l < 32; l++) {
        const t = step === 0 ? 0 : Math.round((w[x0 + 32 * j + l]! + off) / step);
        out[q + l]! |= Math.max(0, Math.min(15, t)) << shift;
      }
    }
  }
  return out;
}

/**
 * Q6_K blocks, our quantizer. Per sub-block j of 16 values: s_j = max|x|/31 (symmetric, so q − 32
 * stays in [−31, 31]); d = the smallest f16 ≥ max_j s_j/127, sc_j = ceil(s_j/d) (int8, 1…127),
 * q − 32 = clamp(round(x/(d·sc_j)), −32, 31). Every |x| ≤ 31·d·sc_j, so
 * |x − x̂| ≤ d·sc_j/2 < max|x|/62 + d/2 (plus float32 rounding of x̂, which is exact here).
 */
export function quantizeQ6_K(w: Float32Array): Uint8Array {
  checkCount(w.length, 'quantizeQ6_K');
  checkFinite(w, 'quantizeQ6_K');
  const nb = w.length / QK_K;
  const out = new Uint8Array(nb * Q6_K_BLOCK_BYTES);
  const s = new Float64Array(16);
  const sc = new Uint8Array(16);
  const L = new Uint8Array(QK_K);
  for (let b = 0; b < nb; b++) {
    const x0 = b * QK_K;
    let maxS = 0;
    for (let j = 0; j < 16; j++) {
      let amax = 0;
      for (let l = 0; l < 16; l++) amax = Math.max(amax, Math.abs(w[x0 + 16 * j + l]!));
      s[j] = amax / 31;
      if (s[j]! > maxS) maxS = s[j]!;
    }
    const dH = maxS > 0 ? f16Up(maxS / 127, 'quantizeQ6_K') : 0;
    const d = f16ToF32(dH);
    for (let j = 0; j < 16; j++) {
      sc[j] = d > 0 ? Math.min(127, Math.ceil(s[j]! / d)) : 0;
      const step = fround(d * sc[j]!);
      for (let l = 0; l < 16; l++) {
        const t = step === 0 ? 0 : Math.round(w[x0 + 16 * j + l]! / step);
        L[16 * j + l] = Math.max(-32, Math.min(31, t)) + 32;
      }
    }
    const o = b * Q6_K_BLOCK_BYTES;
    for (let half = 0; half < 2; half++) {
      for (let l = 0; l < 32; l++) {
        const a = L[128 * half + l]!;
        const bb = L[128 * half + 32 + l]!;
        const c = L[128 * half + 64 + l]!;
        const e = L[128 * half + 96 + l]!;
        out[o + 64 * half + l] = (a & 0xf) | ((c & 0xf) << 4);
        out[o + 64 * half + 32 + l] = (bb & 0xf) | ((e & 0xf) << 4);
        out[o + 128 + 32 * half + l] = (a >> 4) | ((bb >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6);
      }
    }
    for (let j = 0; j < 16; j++) out[o + 192 + j] = sc[j]!; // 1…127: the same bits as int8
    out[o + 208] = dH & 0xff;
    out[o + 209] = dH >> 8;
  }
  return out;
}
