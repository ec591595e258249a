/**
 * MLC's shard records and q4 group quantization (q4f16_1 / q4f32_1), bfloat16, and the exact
 * repack to our q4_0 blocks: the format half of src/engine/io/mlc.ts (see docs/mlc.md).
 */
import { permuteRopeRows } from '../model/rope-order.ts';
import { EngineError } from '../errors.ts';
import { f16ToF32, f32ToF16, QK } from '../quant.ts';
import { type ByteSource } from './bytesource.ts';

export type { ByteSource };

/** A model folder: web-llm's cache, a directory the user picked, a URL prefix, or files in memory. */
export interface MlcFolder {
  /** For messages: the folder's name or URL. */
  readonly name: string;
  /** The file at `path` relative to the folder, or null when there is none. */
  open(path: string): Promise<ByteSource | null>;
}

export type MlcQuantization = 'q4f16_1' | 'q4f32_1';
export const MLC_QUANTIZATIONS: readonly MlcQuantization[] = ['q4f16_1', 'q4f32_1'];
/** Values per scale (group_size of q4f16_1 / q4f32_1). */
export const MLC_GROUP = 32;
/** Nibbles per uint32 storage word. */
export const MLC_PER_WORD = 8;
/** max_int_value for int4: 2^(4−1) − 1. */
export const MLC_MAX_INT = 7;
export const MLC_CHAT_CONFIG = 'mlc-chat-config.json';
/** Manifest names, the current one first (tvmjs renamed ndarray-cache.json to tensor-cache.json). */
export const MLC_MANIFESTS = ['tensor-cache.json', 'ndarray-cache.json'] as const;
export type MlcManifestName = (typeof MLC_MANIFESTS)[number];

export type MlcDtype = 'uint32' | 'float16' | 'float32' | 'bfloat16';
export type MlcFormat = 'raw' | 'f32-to-bf16';
export const DTYPE_BYTES: Record<MlcDtype, number> = { uint32: 4, float16: 2, float32: 4, bfloat16: 2 };

export interface MlcRecord {
  name: string;
  shape: number[];
  dtype: MlcDtype;
  format: MlcFormat;
  nbytes: number;
  byteOffset: number;
}

export interface MlcShard {
  dataPath: string;
  format: 'raw-shard';
  nbytes: number;
  records: MlcRecord[];
  md5sum?: string;
}

export interface MlcManifest {
  metadata: Record<string, unknown>;
  records: MlcShard[];
}

/** Bytes per stored element: float32 under "f32-to-bf16" is stored as bfloat16. */
export function storedElementBytes(dtype: MlcDtype, format: MlcFormat): number {
  return dtype === 'float32' && format === 'f32-to-bf16' ? 2 : DTYPE_BYTES[dtype];
}

// ---------------------------------------------------------------------------------------------
// bfloat16 and the group quantization itself

const f32Box = new Float32Array(1);
const u32Box = new Uint32Array(f32Box.buffer);

/**
 * f32 → bf16 bits as tvmjs's dump does (_convert_f32_to_bf16): round to nearest even while |v| is
 * below the largest bf16 value, truncation beyond (so huge values clip to it instead of to Inf).
 */
export function f32ToBf16(v: number): number {
  f32Box[0] = v;
  const bits = u32Box[0]!;
  const limit = 3.3895313892515355e38; // 0x7f7f0000: the float32 max with its low 16 bits cleared
  const f = f32Box[0]!;
  const bias = f < limit && f > -limit ? ((bits >>> 16) & 1) + 0x7fff : 0;
  return ((bits + bias) >>> 16) & 0xffff;
}

export function bf16ToF32(h: number): number {
  u32Box[0] = (h & 0xffff) << 16;
  return f32Box[0]!;
}

/** Storage words per row of a K-wide matrix: 4 per group, groups padded to 32. */
export function mlcWordsPerRow(cols: number): number {
  return (MLC_GROUP / MLC_PER_WORD) * Math.ceil(cols / MLC_GROUP);
}

/** Scales per row. */
export function mlcGroupsPerRow(cols: number): number {
  return Math.ceil(cols / MLC_GROUP);
}

/** A group-quantized (rows, cols) matrix: the packed nibbles and the scales as stored. */
export interface MlcQ4 {
  rows: number;
  /** K: the logical row length (the packed rows are padded to a multiple of 32). */
  cols: number;
  /** (rows, mlcWordsPerRow(cols)) */
  qWeight: Uint32Array;
  /** (rows, mlcGroupsPerRow(cols)), exact stored values (f16 or bf16/f32 widened to f32). */
  scale: Float32Array;
}

/** value = (q − 7) · scale, row-major (rows, cols); the padding past cols is dropped. */
export function dequantizeMlcQ4(m: MlcQ4): Float32Array {
  const { rows, cols } = m;
  const W = mlcWordsPerRow(cols);
  const G = mlcGroupsPerRow(cols);
  checkQ4(m, 'dequantizeMlcQ4');
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const qo = r * W;
    const so = r * G;
    const oo = r * cols;
    for (let k = 0; k < cols; k++) {
      const q = (m.qWeight[qo + (k >>> 3)]! >>> (4 * (k & 7))) & 15;
      out[oo + k] = (q - MLC_MAX_INT) * m.scale[so + (k >>> 5)]!;
    }
  }
  return out;
}

function checkQ4(m: MlcQ4, what: string): void {
  const W = mlcWordsPerRow(m.cols);
  const G = mlcGroupsPerRow(m.cols);
  if (m.qWeight.length !== m.rows * W || m.scale.length !== m.rows * G)
    throw new EngineError(
      'SHAPE_MISMATCH',
      `${what}: ${m.qWeight.length} words and ${m.scale.length} scales for a ${m.rows}×${m.cols} matrix, expected ${m.rows * W} and ${m.rows * G}.`,
    );
}

/** C roundf / llvm.round: halves away from zero (what tir.round lowers to). */
function roundHalfAway(x: number): number {
  return Math.sign(x) * Math.round(Math.abs(x));
}

const toF16 = (x: number): number => f16ToF32(f32ToF16(x));

/**
 * MLC's group quantization of a row-major (rows, cols) f32 matrix (GroupQuantize._quantize, layout
 * NK): per group of 32 along a row, scale = max|w| / 7, q = clamp(round(w / scale + 7), 0, 14),
 * every operation rounded to the model dtype: f16 for q4f16_1 (the weights are first cast to f16,
 * as mlc_llm's loader does), f32 for q4f32_1. The returned scales are those values before any
 * storage encoding (q4f32_1's are f32; the dump then stores them as bf16).
 *
 * A group of zeros has scale 0, where MLC's 0/0 leaves q undefined; we store q = 7 (any q gives 0).
 * Throws BAD_ARGUMENT for values the model dtype cannot hold (NaN, Inf, beyond f16's 65504).
 */
export function quantizeMlcQ4(w: Float32Array, rows: number, cols: number, quant: MlcQuantization): MlcQ4 {
  if (w.length !== rows * cols)
    throw new EngineError(
      'SHAPE_MISMATCH',
      `quantizeMlcQ4: ${w.length} values for a ${rows}×${cols} matrix.`,
    );
  const r = quant === 'q4f16_1' ? toF16 : Math.fround;
  const W = mlcWordsPerRow(cols);
  const G = mlcGroupsPerRow(cols);
  const qWeight = new Uint32Array(rows * W);
  const scale = new Float32Array(rows * G);
  const x = new Float64Array(MLC_GROUP);
  for (let row = 0; row < rows; row++) {
    for (let g = 0; g < G; g++) {
      const k0 = g * MLC_GROUP;
      const n = Math.min(MLC_GROUP, cols - k0);
      let maxAbs = 0;
      for (let j = 0; j < n; j++) {
        const v = r(w[row * cols + k0 + j]!);
        if (!Number.isFinite(v))
          throw new EngineError(
            'BAD_ARGUMENT',
            `quantizeMlcQ4: element (${row}, ${k0 + j}) is ${w[row * cols + k0 + j]}, which ${quant} cannot store.`,
          );
        x[j] = v;
        maxAbs = Math.max(maxAbs, Math.abs(v));
      }
      const s = r(maxAbs / MLC_MAX_INT);
      scale[row * G + g] = s;
      for (let j = 0; j < n; j++) {
        let q = MLC_MAX_INT;
        if (s !== 0) {
          const t = r(r(x[j]! / s) + MLC_MAX_INT);
          q = Math.min(2 * MLC_MAX_INT, Math.max(0, roundHalfAway(t)));
        }
        const k = k0 + j;
        const wi = row * W + (k >>> 3);
        qWeight[wi] = qWeight[wi]! | (q << (4 * (k & 7))); // stored mod 2^32
      }
    }
  }
  return { rows, cols, qWeight, scale };
}

/**
 * The same values as GGUF q4_0 blocks (src/engine/quant.ts), ready for packForGpu / be.weight:
 * d = −scale and q' = 15 − q, since (q' − 8)·d = (q − 7)·scale for every nibble 0..15. Exact
 * whenever −scale is an f16 value: always for q4f16_1; for q4f32_1's bf16 scales when
 * 2^−17 ≤ |scale| ≤ 65504 (or 0). `inexactScales` counts the scales rounded to f16 otherwise.
 * Needs cols % 32 === 0 (q4_0 has no padding).
 */
export function mlcQ4ToQ4_0(m: MlcQ4): { blocks: Uint8Array; inexactScales: number } {
  checkQ4(m, 'mlcQ4ToQ4_0');
  if (m.cols % QK !== 0)
    throw new EngineError(
      'SHAPE_MISMATCH',
      `mlcQ4ToQ4_0: rows of ${m.cols} values are not a multiple of ${QK}; q4_0 blocks need K divisible by 32 (keep this matrix in f32).`,
    );
  const G = m.cols / QK;
  const blocks = new Uint8Array(m.rows * G * 18);
  let inexactScales = 0;
  for (let r = 0; r < m.rows; r++)
    for (let g = 0; g < G; g++) {
      const b = (r * G + g) * 18;
      const s = m.scale[r * G + g]!;
      const h = s === 0 ? 0 : f32ToF16(-s);
      if (f16ToF32(h) !== (s === 0 ? 0 : -s)) inexactScales++;
      blocks[b] = h & 0xff;
      blocks[b + 1] = h >>> 8;
      const w0 = (r * G + g) * 4; // 4 words of 8 nibbles: elements 0..31 of the group
      for (let j = 0; j < 16; j++) {
        const lo = (m.qWeight[w0 + (j >>> 3)]! >>> (4 * (j & 7))) & 15;
        const hi = (m.qWeight[w0 + ((j + 16) >>> 3)]! >>> (4 * (j & 7))) & 15;
        blocks[b + 2 + j] = (15 - lo) | ((15 - hi) << 4);
      }
    }
  return { blocks, inexactScales };
}

/** Rows `order[i]` of m become row i (an exact copy of the nibbles and scales). */
export function permuteMlcRows(m: MlcQ4, order: ArrayLike<number>): MlcQ4 {
  checkQ4(m, 'permuteMlcRows');
  if (order.length !== m.rows)
    throw new EngineError(
      'SHAPE_MISMATCH',
      `permuteMlcRows: ${order.length} row indices for ${m.rows} rows.`,
    );
  const W = mlcWordsPerRow(m.cols);
  const G = mlcGroupsPerRow(m.cols);
  const qWeight = new Uint32Array(m.qWeight.length);
  const scale = new Float32Array(m.scale.length);
  for (let i = 0; i < m.rows; i++) {
    const src = order[i]!;
    qWeight.set(m.qWeight.subarray(src * W, (src + 1) * W), i * W);
    scale.set(m.scale.subarray(src * G, (src + 1) * G), i * G);
  }
  return { rows: m.rows, cols: m.cols, qWeight, scale };
}

/**
 * For an (nHeads·hs)-row q or k matrix: ours[i] = hf[order[i]], i.e. the Hugging Face (rotate_half)
 * row that our adjacent-pair RoPE layout puts at row i. Derived from rope-order.ts permuteRopeRows (on
 * the row indices themselves), so PEFT import/export and MLC loading use one permutation.
 * Example: 1 head of size 4 → [0, 2, 1, 3].
 */
export function ropeRowOrder(nHeads: number, hs: number): Uint32Array {
  const iota = Float32Array.from({ length: nHeads * hs }, (_, i) => i);
  return Uint32Array.from(permuteRopeRows(iota, nHeads, hs, false));
}
