/**
 * A GGUF writer for tests (no model can be downloaded where the tests run): `writeGguf` lays out
 * header, metadata, tensor infos and aligned tensor data as ggml's docs/gguf.md specifies (versions
 * 2 and 3 are the same bytes for little-endian files), quantizing f32 input with src/engine/quant.ts
 * (Q8_0, Q4_0) and src/engine/quant-k.ts (Q4_K, Q6_K); `llamaGguf` writes a whole LLaMA model with
 * llama.cpp's tensor names, `llama.*` metadata and a tiny tokenizer.
 *
 * Test hooks on a tensor (to build broken files): `rawType` (the type id written, e.g. an unknown
 * one), `rawBytes` (data written as is), `rawOffset` (the offset written into the tensor info).
 *
 * @example
 *   const bytes = writeGguf({ version: 3, metadata: { 'general.architecture': meta.string('llama') },
 *     tensors: [{ name: 'w', type: 'Q8_0', dims: [64, 2], data: new Float32Array(128) }] });
 */
import { EngineError } from '../src/engine/errors.ts';
import { ggmlTypeId, GGML_TYPES, GGUF_VALUE_TYPES } from '../src/engine/io/gguf.ts';
import { ggufDims, oursToGgufName } from '../src/engine/io/gguf-llama.ts';
import type {
  GgufArray,
  GgufKV,
  GgufScalar,
  GgufValueType,
  SupportedGgmlType,
} from '../src/engine/io/gguf.ts';
import { headSize, validateConfig, type LlamaConfig } from '../src/engine/model/config.ts';
import { checkWeights, WEIGHT_NAMES, type LlamaWeightsF32 } from '../src/engine/model/weights.ts';
import { f32ToF16, quantizeQ4_0, quantizeQ8_0 } from '../src/engine/quant.ts';
import { quantizeQ4_K, quantizeQ6_K } from '../src/engine/quant-k.ts';

/** Metadata value constructors: meta.u32(5), meta.string('llama'), meta.array('f32', [0, 1]). */
export const meta = {
  u8: (value: number): GgufKV => ({ type: 'u8', value }),
  i8: (value: number): GgufKV => ({ type: 'i8', value }),
  u16: (value: number): GgufKV => ({ type: 'u16', value }),
  i16: (value: number): GgufKV => ({ type: 'i16', value }),
  u32: (value: number): GgufKV => ({ type: 'u32', value }),
  i32: (value: number): GgufKV => ({ type: 'i32', value }),
  /** Stored as float32: reads back as Math.fround(value). */
  f32: (value: number): GgufKV => ({ type: 'f32', value }),
  f64: (value: number): GgufKV => ({ type: 'f64', value }),
  u64: (value: bigint): GgufKV => ({ type: 'u64', value }),
  i64: (value: bigint): GgufKV => ({ type: 'i64', value }),
  bool: (value: boolean): GgufKV => ({ type: 'bool', value }),
  string: (value: string): GgufKV => ({ type: 'string', value }),
  array: (itemType: GgufValueType, items: readonly GgufScalar[] | readonly GgufArray[]): GgufKV => ({
    type: 'array',
    value: { itemType, items },
  }),
};

export interface GgufWriteTensor {
  name: string;
  type: SupportedGgmlType;
  /** ggml order (ne0, the contiguous dimension, first). */
  dims: number[];
  /** f32 values, quantized to `type` here (required unless rawBytes is given). */
  data?: Float32Array;
  /** Test hook: the type id written into the tensor info instead of `type`'s. */
  rawType?: number;
  /** Test hook: the tensor's data bytes, written as they are. */
  rawBytes?: Uint8Array;
  /** Test hook: the offset written into the tensor info (the data still goes where it belongs). */
  rawOffset?: number;
}

export interface GgufWriteOptions {
  version: 2 | 3;
  metadata: ReadonlyMap<string, GgufKV> | Readonly<Record<string, GgufKV>>;
  tensors: readonly GgufWriteTensor[];
  /** Data alignment; written as general.alignment (u32) unless 32 (GGUF's default). */
  alignment?: number;
}

/** f32 values in a GGUF tensor type. */
export function encodeTensor(type: SupportedGgmlType, data: Float32Array): Uint8Array {
  switch (type) {
    case 'F32':
      return new Uint8Array(data.slice().buffer);
    case 'F16': {
      const out = new Uint8Array(2 * data.length);
      for (let i = 0; i < data.length; i++) {
        const h = f32ToF16(data[i]!);
        out[2 * i] = h & 0xff;
        out[2 * i + 1] = h >> 8;
      }
      return out;
    }
    case 'Q8_0':
      return quantizeQ8_0(data);
    case 'Q4_0':
      return quantizeQ4_0(data);
    case 'Q4_K':
      return quantizeQ4_K(data);
    case 'Q6_K':
      return quantizeQ6_K(data);
  }
}

/** Little-endian byte writer. */
class Out {
  private chunks: Uint8Array[] = [];
  length = 0;
  private put(b: Uint8Array): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  bytes(b: Uint8Array): void {
    this.put(b);
  }
  private num(size: number, f: (v: DataView) => void): void {
    const b = new Uint8Array(size);
    f(new DataView(b.buffer));
    this.put(b);
  }
  u8 = (v: number) => this.num(1, (d) => d.setUint8(0, v));
  i8 = (v: number) => this.num(1, (d) => d.setInt8(0, v));
  u16 = (v: number) => this.num(2, (d) => d.setUint16(0, v, true));
  i16 = (v: number) => this.num(2, (d) => d.setInt16(0, v, true));
  u32 = (v: number) => this.num(4, (d) => d.setUint32(0, v, true));
  i32 = (v: number) => this.num(4, (d) => d.setInt32(0, v, true));
  f32 = (v: number) => this.num(4, (d) => d.setFloat32(0, v, true));
  f64 = (v: number) => this.num(8, (d) => d.setFloat64(0, v, true));
  u64 = (v: number | bigint) => this.num(8, (d) => d.setBigUint64(0, BigInt(v), true));
  i64 = (v: bigint) => this.num(8, (d) => d.setBigInt64(0, v, true));
  string(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.put(b);
  }
  pad(alignment: number): void {
    const n = (alignment - (this.length % alignment)) % alignment;
    if (n) this.put(new Uint8Array(n));
  }
  result(): Uint8Array<ArrayBuffer> {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

function badValue(key: string, type: string, v: unknown): never {
  throw new EngineError('BAD_ARGUMENT', `writeGguf: metadata ${key}: ${String(v)} is not a ${type} value.`);
}

function writeScalar(o: Out, key: string, t: GgufValueType, v: GgufScalar): void {
  switch (t) {
    case 'u8':
    case 'i8':
    case 'u16':
    case 'i16':
    case 'u32':
    case 'i32':
    case 'f32':
    case 'f64':
      if (typeof v !== 'number') badValue(key, t, v);
      o[t](v);
      return;
    case 'u64':
    case 'i64':
      if (typeof v !== 'bigint') badValue(key, t, v);
      o[t](v);
      return;
    case 'bool':
      if (typeof v !== 'boolean') badValue(key, t, v);
      o.u8(v ? 1 : 0);
      return;
    case 'string':
      if (typeof v !== 'string') badValue(key, t, v);
      o.string(v);
      return;
    case 'array':
      badValue(key, t, v);
  }
}

function writeArray(o: Out, key: string, a: GgufArray): void {
  o.u32(GGUF_VALUE_TYPES.indexOf(a.itemType));
  o.u64(a.items.length);
  for (const item of a.items) {
    if (a.itemType === 'array') writeArray(o, key, item as GgufArray);
    else writeScalar(o, key, a.itemType, item as GgufScalar);
  }
}

/** A complete GGUF file. */
export function writeGguf(opts: GgufWriteOptions): Uint8Array<ArrayBuffer> {
  const entries: [string, GgufKV][] =
    opts.metadata instanceof Map ? [...opts.metadata] : Object.entries(opts.metadata);
  const stored = entries.find(([k]) => k === 'general.alignment')?.[1];
  const alignment = opts.alignment ?? (stored?.type === 'u32' ? stored.value : 32);
  if (opts.alignment !== undefined) {
    if (stored && !(stored.type === 'u32' && stored.value === opts.alignment)) {
      throw new EngineError(
        'BAD_ARGUMENT',
        'writeGguf: alignment and metadata general.alignment disagree; give one of them.',
      );
    }
    if (!stored && opts.alignment !== 32) entries.push(['general.alignment', meta.u32(opts.alignment)]);
  }

  const datas = opts.tensors.map((t) => {
    let n = 1;
    for (const d of t.dims) n *= d;
    if (t.rawBytes) return t.rawBytes;
    if (!t.data)
      throw new EngineError('BAD_ARGUMENT', `writeGguf: tensor ${t.name} has neither data nor rawBytes.`);
    if (t.data.length !== n) {
      throw new EngineError(
        'SHAPE_MISMATCH',
        `writeGguf: tensor ${t.name} has ${t.data.length} values for dims [${t.dims.join(', ')}].`,
      );
    }
    const bs = GGML_TYPES[ggmlTypeId(t.type)]!.blockSize;
    if ((t.dims[0] ?? 1) % bs !== 0) {
      throw new EngineError(
        'SHAPE_MISMATCH',
        `writeGguf: tensor ${t.name} is ${t.type} but its rows have ${t.dims[0]} values, not a multiple of ${bs}.`,
      );
    }
    return encodeTensor(t.type, t.data);
  });
  const offsets: number[] = [];
  let cur = 0;
  for (const d of datas) {
    cur = Math.ceil(cur / alignment) * alignment;
    offsets.push(cur);
    cur += d.length;
  }

  const o = new Out();
  o.bytes(new TextEncoder().encode('GGUF'));
  o.u32(opts.version);
  o.u64(opts.tensors.length);
  o.u64(entries.length);
  for (const [key, kv] of entries) {
    o.string(key);
    o.u32(GGUF_VALUE_TYPES.indexOf(kv.type));
    if (kv.type === 'array') writeArray(o, key, kv.value);
    else writeScalar(o, key, kv.type, kv.value);
  }
  opts.tensors.forEach((t, i) => {
    o.string(t.name);
    o.u32(t.dims.length);
    for (const d of t.dims) o.u64(d);
    o.u32(t.rawType ?? ggmlTypeId(t.type));
    o.u64(t.rawOffset ?? offsets[i]!);
  });
  o.pad(alignment);
  datas.forEach((d) => {
    o.bytes(d);
    o.pad(alignment); // like ggml's writer: every tensor, the last one too, padded to the alignment
  });
  return o.result();
}

/** general.file_type values (gguf-py LlamaFileType) for files whose matrices are all of one type. */
const FILE_TYPE: Record<SupportedGgmlType, number> = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q8_0: 7,
  Q4_K: 14, // MOSTLY_Q4_K_S: every matrix Q4_K
  Q6_K: 18,
};

export interface LlamaGgufOptions {
  version?: 2 | 3;
  alignment?: number;
  /** general.name */
  name?: string;
  /** Write the tokenizer.ggml.* entries (default true). */
  tokenizer?: boolean;
}

/**
 * The metadata llamaGguf writes, in order: general.*, llama.* (llama.cpp's key names) and a tiny
 * tokenizer: tokenizer.ggml.model "llama", tokens ['<unk>', '<s>', '</s>', 'tok3', …], scores
 * (0 for the specials, −i after), token_type (2 unknown, 3 control, 1 normal), bos 1, eos 2, unk 0.
 */
export function llamaGgufMetadata(
  c: LlamaConfig,
  type: SupportedGgmlType,
  opts: LlamaGgufOptions = {},
): Map<string, GgufKV> {
  const m = new Map<string, GgufKV>();
  m.set('general.architecture', meta.string('llama'));
  m.set('general.name', meta.string(opts.name ?? 'dust2gold test model'));
  m.set('general.file_type', meta.u32(FILE_TYPE[type]));
  if (type !== 'F32' && type !== 'F16') m.set('general.quantization_version', meta.u32(2));
  m.set('llama.context_length', meta.u32(c.maxSeqLen));
  m.set('llama.embedding_length', meta.u32(c.dim));
  m.set('llama.block_count', meta.u32(c.nLayers));
  m.set('llama.feed_forward_length', meta.u32(c.hiddenDim));
  m.set('llama.rope.dimension_count', meta.u32(headSize(c)));
  m.set('llama.attention.head_count', meta.u32(c.nHeads));
  m.set('llama.attention.head_count_kv', meta.u32(c.nKvHeads));
  m.set('llama.attention.layer_norm_rms_epsilon', meta.f32(c.normEps));
  m.set('llama.rope.freq_base', meta.f32(c.ropeTheta));
  if (opts.tokenizer ?? true) {
    const V = c.vocabSize;
    const special = ['<unk>', '<s>', '</s>'];
    const tokens = Array.from({ length: V }, (_, i) => special[i] ?? `tok${i}`);
    m.set('tokenizer.ggml.model', meta.string('llama'));
    m.set('tokenizer.ggml.tokens', meta.array('string', tokens));
    m.set(
      'tokenizer.ggml.scores',
      meta.array(
        'f32',
        tokens.map((_, i) => (i < 3 ? 0 : -i)),
      ),
    );
    m.set(
      'tokenizer.ggml.token_type',
      meta.array(
        'i32',
        tokens.map((_, i) => (i === 0 ? 2 : i < 3 ? 3 : 1)),
      ),
    );
    m.set('tokenizer.ggml.bos_token_id', meta.u32(1));
    m.set('tokenizer.ggml.eos_token_id', meta.u32(2));
    m.set('tokenizer.ggml.unknown_token_id', meta.u32(0));
  }
  return m;
}

/**
 * The tensors llamaGguf writes, in llama.cpp's order (token_embd, output_norm, output, then each
 * layer): matrices in `type` (F32 when a row is not a multiple of the type's block size, as
 * loadLlama keeps such matrices f32), norms in F32 as llama.cpp stores them.
 */
export function llamaGgufTensors(
  c: LlamaConfig,
  w: LlamaWeightsF32,
  type: SupportedGgmlType,
): GgufWriteTensor[] {
  const bs = GGML_TYPES[ggmlTypeId(type)]!.blockSize;
  const out: GgufWriteTensor[] = [];
  const add = (weight: (typeof WEIGHT_NAMES)[number], layer: number | null) => {
    const dims = ggufDims(c, weight);
    const n = dims.reduce((a, b) => a * b, 1);
    const data = w[weight].subarray((layer ?? 0) * n, ((layer ?? 0) + 1) * n);
    const t: SupportedGgmlType = dims.length === 1 || dims[0]! % bs !== 0 ? 'F32' : type;
    out.push({ name: oursToGgufName(weight, layer), type: t, dims, data });
  };
  add('tokenEmbedding', null);
  add('rmsFinal', null);
  if (!c.sharedClassifier) add('wcls', null);
  for (let l = 0; l < c.nLayers; l++) {
    for (const weight of ['rmsAtt', 'wq', 'wk', 'wv', 'wo', 'rmsFfn', 'w1', 'w3', 'w2'] as const)
      add(weight, l);
  }
  return out;
}

/** A LLaMA model as a GGUF file (see llamaGgufMetadata and llamaGgufTensors). */
export function llamaGguf(
  c: LlamaConfig,
  w: LlamaWeightsF32,
  type: SupportedGgmlType,
  opts: LlamaGgufOptions = {},
): Uint8Array<ArrayBuffer> {
  validateConfig(c);
  checkWeights(c, w);
  return writeGguf({
    version: opts.version ?? 3,
    metadata: llamaGgufMetadata(c, type, opts),
    tensors: llamaGgufTensors(c, w, type),
    ...(opts.alignment !== undefined ? { alignment: opts.alignment } : {}),
  });
}
