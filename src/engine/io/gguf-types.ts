// GGUF's tensor types (ggml type ids, block sizes) and metadata value types: src/engine/io/gguf.ts.
import { EngineError } from '../errors.ts';

// ---------------------------------------------------------------------------------------------
// ggml tensor types

export interface GgmlTypeInfo {
  /** Upper-case name as in ggml's GGML_TYPE_* enum: 'Q4_K'. */
  readonly name: string;
  /** Values per block. */
  readonly blockSize: number;
  /** Bytes per block. */
  readonly typeSize: number;
}

/**
 * Every type id GGUF files use (ggml's include/ggml.h enum ggml_type; block sizes from ggml's
 * type_traits in src/ggml.c and the block structs in src/ggml-common.h, cross-checked with
 * gguf-py's GGML_QUANT_SIZES).
 */
export const GGML_TYPES: Readonly<Record<number, GgmlTypeInfo>> = {
  0: { name: 'F32', blockSize: 1, typeSize: 4 },
  1: { name: 'F16', blockSize: 1, typeSize: 2 },
  2: { name: 'Q4_0', blockSize: 32, typeSize: 18 },
  3: { name: 'Q4_1', blockSize: 32, typeSize: 20 },
  6: { name: 'Q5_0', blockSize: 32, typeSize: 22 },
  7: { name: 'Q5_1', blockSize: 32, typeSize: 24 },
  8: { name: 'Q8_0', blockSize: 32, typeSize: 34 },
  9: { name: 'Q8_1', blockSize: 32, typeSize: 36 },
  10: { name: 'Q2_K', blockSize: 256, typeSize: 84 },
  11: { name: 'Q3_K', blockSize: 256, typeSize: 110 },
  12: { name: 'Q4_K', blockSize: 256, typeSize: 144 },
  13: { name: 'Q5_K', blockSize: 256, typeSize: 176 },
  14: { name: 'Q6_K', blockSize: 256, typeSize: 210 },
  15: { name: 'Q8_K', blockSize: 256, typeSize: 292 },
  16: { name: 'IQ2_XXS', blockSize: 256, typeSize: 66 },
  17: { name: 'IQ2_XS', blockSize: 256, typeSize: 74 },
  18: { name: 'IQ3_XXS', blockSize: 256, typeSize: 98 },
  19: { name: 'IQ1_S', blockSize: 256, typeSize: 50 },
  20: { name: 'IQ4_NL', blockSize: 32, typeSize: 18 },
  21: { name: 'IQ3_S', blockSize: 256, typeSize: 110 },
  22: { name: 'IQ2_S', blockSize: 256, typeSize: 82 },
  23: { name: 'IQ4_XS', blockSize: 256, typeSize: 136 },
  24: { name: 'I8', blockSize: 1, typeSize: 1 },
  25: { name: 'I16', blockSize: 1, typeSize: 2 },
  26: { name: 'I32', blockSize: 1, typeSize: 4 },
  27: { name: 'I64', blockSize: 1, typeSize: 8 },
  28: { name: 'F64', blockSize: 1, typeSize: 8 },
  29: { name: 'IQ1_M', blockSize: 256, typeSize: 56 },
  30: { name: 'BF16', blockSize: 1, typeSize: 2 },
  34: { name: 'TQ1_0', blockSize: 256, typeSize: 54 },
  35: { name: 'TQ2_0', blockSize: 256, typeSize: 66 },
  39: { name: 'MXFP4', blockSize: 32, typeSize: 17 },
  40: { name: 'NVFP4', blockSize: 64, typeSize: 36 },
  41: { name: 'Q1_0', blockSize: 128, typeSize: 18 },
  42: { name: 'Q2_0', blockSize: 64, typeSize: 18 },
};

/** Ids ggml once had and removed: named in messages. */
export const REMOVED_TYPES: Readonly<Record<number, string>> = {
  4: 'Q4_2',
  5: 'Q4_3',
  31: 'Q4_0_4_4',
  32: 'Q4_0_4_8',
  33: 'Q4_0_8_8',
  36: 'IQ4_NL_4_4',
  37: 'IQ4_NL_4_8',
  38: 'IQ4_NL_8_8',
};

/** The tensor types dust2gold can read. */
export const SUPPORTED_GGML_TYPES = ['F32', 'F16', 'Q4_0', 'Q8_0', 'Q4_K', 'Q6_K'] as const;
export type SupportedGgmlType = (typeof SUPPORTED_GGML_TYPES)[number];

/** Type id of a type name: ggmlTypeId('Q4_K') = 12. */
export function ggmlTypeId(name: string): number {
  for (const [id, t] of Object.entries(GGML_TYPES)) if (t.name === name) return Number(id);
  throw new EngineError('BAD_ARGUMENT', `"${name}" is not a ggml tensor type name.`);
}

/** A type's name for messages: 'Q5_K', 'Q4_0_4_4 (removed from ggml)', 'type 99 (unknown)'. */
export function ggmlTypeName(id: number): string {
  return (
    GGML_TYPES[id]?.name ?? (REMOVED_TYPES[id] ? `${REMOVED_TYPES[id]} (removed from ggml)` : `type ${id}`)
  );
}

export function isSupportedType(id: number): boolean {
  const t = GGML_TYPES[id];
  return !!t && (SUPPORTED_GGML_TYPES as readonly string[]).includes(t.name);
}

export function unsupported(tensor: string, id: number): EngineError {
  return new EngineError(
    'BAD_FILE',
    `${tensor} is ${ggmlTypeName(id)}, which dust2gold cannot read yet; use a Q4_0, Q8_0, Q4_K_M or Q6_K file (F16 and F32 files work too).`,
  );
}

/** Bytes of `nElements` values of type `id` (nElements a multiple of the block size). */
export function ggmlByteSize(id: number, nElements: number): number {
  const t = GGML_TYPES[id];
  if (!t) throw new EngineError('BAD_ARGUMENT', `ggmlByteSize: ${ggmlTypeName(id)} is not a known type.`);
  return (nElements / t.blockSize) * t.typeSize;
}

// ---------------------------------------------------------------------------------------------
// metadata values

export type GgufValueType =
  'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'bool' | 'string' | 'array' | 'u64' | 'i64' | 'f64';

/** gguf_metadata_value_type ids (ggml's docs/gguf.md). */
export const GGUF_VALUE_TYPES: readonly GgufValueType[] = [
  'u8',
  'i8',
  'u16',
  'i16',
  'u32',
  'i32',
  'f32',
  'bool',
  'string',
  'array',
  'u64',
  'i64',
  'f64',
];

/** A number for 8–32-bit integers, f32 (the exact float32 value) and f64; a bigint for u64 and i64. */
export type GgufScalar = number | bigint | boolean | string;

/** A GGUF array: items of one type; nested arrays are GgufArray items. */
export interface GgufArray {
  readonly itemType: GgufValueType;
  readonly items: readonly GgufScalar[] | readonly GgufArray[];
}

export type GgufKV =
  | { readonly type: 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'f64'; readonly value: number }
  | { readonly type: 'u64' | 'i64'; readonly value: bigint }
  | { readonly type: 'bool'; readonly value: boolean }
  | { readonly type: 'string'; readonly value: string }
  | { readonly type: 'array'; readonly value: GgufArray };

export const FIXED_SIZE: Partial<Record<GgufValueType, number>> = {
  u8: 1,
  i8: 1,
  u16: 2,
  i16: 2,
  u32: 4,
  i32: 4,
  f32: 4,
  bool: 1,
  u64: 8,
  i64: 8,
  f64: 8,
};
