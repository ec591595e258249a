/**
 * KV cache element types. 'f32': one f32 per value. 'f16': two binary16 values packed in one u32
 * (value 2i in the low half, value 2i + 1 in the high half — pack2x16float's layout), read back
 * with unpack2x16float and accumulated in f32. Core WGSL, no `shader-f16` feature: half the
 * memory on every device, SwiftShader included. A cache's element type is its tensor's: f32
 * values, or u32 words of f16 pairs (`kvTypeOf`).
 *
 * The encoder is ours, not pack2x16float: WGSL lets that builtin round a value that f16 cannot
 * hold to either neighbour, flush subnormals, and return an indeterminate word for values beyond
 * f16's range, so two devices (or a device and this reference) could store different bits.
 * `kvF16Bits` is defined on every input, and shaders/attention_decode.wgsl (`kv_f16`) computes it
 * with the same integer operations:
 *   - round to nearest, ties to even (IEEE-754's default rounding);
 *   - |x| < 2^-14 (f16's subnormal range) → ±0, so every stored value is a normal f16 or a zero,
 *     which unpack2x16float converts exactly on every implementation (subnormals may be flushed);
 *   - |x| ≥ 65520 (what rounds to ∞) and ±∞ saturate to ±65504, the largest finite f16;
 *   - NaN → 0x7e00 (a quiet NaN), whatever its sign and payload.
 */
import { EngineError } from './errors.ts';
import { f16ToF32 } from './quant.ts';

export type KvType = 'f32' | 'f16';

const f32Box = new Float32Array(1);
const u32Box = new Uint32Array(f32Box.buffer);

/** The f16 bits the KV cache stores for `x` (first rounded to f32): see the header for the rules. */
export function kvF16Bits(x: number): number {
  f32Box[0] = x;
  const b = u32Box[0]!;
  const s = (b >>> 16) & 0x8000;
  const a = b & 0x7fffffff;
  if (a > 0x7f800000) return 0x7e00; // NaN
  if (a >= 0x477ff000) return s | 0x7bff; // ≥ 65520 and ∞: saturate
  if (a < 0x38800000) return s; // below 2^-14: ±0
  const r = a - 0x38000000; // rebias the exponent from 127 to 15
  const h = r >>> 13;
  const rem = r & 0x1fff;
  return s | (rem > 0x1000 || (rem === 0x1000 && h & 1) ? h + 1 : h);
}

let table: Float32Array | null = null;
/** Every f16 bit pattern's value (exact in f32): 256 KiB, built on first use. */
export function f16Table(): Float32Array {
  if (!table) {
    table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) table[h] = f16ToF32(h);
  }
  return table;
}

/** Packs values (an even count) into u32 words of two cache f16 values each. */
export function packKvF16(values: ArrayLike<number>): Uint32Array {
  if (values.length % 2 !== 0)
    throw new EngineError('BAD_ARGUMENT', `packKvF16: ${values.length} values is not an even count.`);
  const out = new Uint32Array(values.length / 2);
  for (let i = 0; i < out.length; i++)
    out[i] = (kvF16Bits(values[2 * i]!) | (kvF16Bits(values[2 * i + 1]!) << 16)) >>> 0;
  return out;
}

/** The values held by u32 words of f16 pairs (low half first). */
export function unpackKvF16(words: ArrayLike<number>): Float32Array {
  const t = f16Table();
  const out = new Float32Array(words.length * 2);
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    out[2 * i] = t[w & 0xffff]!;
    out[2 * i + 1] = t[w >>> 16]!;
  }
  return out;
}

/** What the cache stores for each value: the f16 round trip of `kvF16Bits`. */
export function roundKvF16(values: ArrayLike<number>): Float32Array {
  const t = f16Table();
  return Float32Array.from(values, (x) => t[kvF16Bits(x)]!);
}

/**
 * The element type of a (kcache, vcache) pair from their dtypes: f32, or u32 words of f16 pairs.
 * Throws BAD_ARGUMENT for mismatched or other dtypes, and for an odd head size with f16 (a pair
 * must not straddle two heads).
 */
export function kvTypeOf(fn: string, kDtype: string, vDtype: string, HS: number): KvType {
  if (kDtype !== vDtype)
    throw new EngineError('BAD_ARGUMENT', `${fn}: kcache is ${kDtype} but vcache is ${vDtype}.`);
  if (kDtype === 'f32') return 'f32';
  if (kDtype !== 'u32') {
    throw new EngineError(
      'BAD_ARGUMENT',
      `${fn}: a KV cache holds f32 values or u32 words of f16 pairs, not ${kDtype}.`,
    );
  }
  if (HS % 2 !== 0) {
    throw new EngineError(
      'BAD_ARGUMENT',
      `${fn}: an f16 KV cache packs values in pairs and needs an even head size, not ${HS}.`,
    );
  }
  return 'f16';
}

/** Bytes per cached value. */
export function kvBytesPerValue(kv: KvType): number {
  return kv === 'f16' ? 2 : 4;
}
