/**
 * GGUF (llama.cpp's model format), versions 2 and 3, little-endian: the header read piece by piece
 * from a ByteSource (never the tensor data), tensors read whole or in chunks, a CPU dequantizer for
 * F32, F16, Q4_0, Q8_0, Q4_K and Q6_K. The LLaMA view (config, names) is gguf-llama.ts; the type tables
 * gguf-types.ts. See docs/gguf.md.
 *
 * Layout (ggml's docs/gguf.md; limits and checks as in ggml's src/gguf.cpp):
 *   u32 magic "GGUF" | u32 version | u64 tensor_count | u64 metadata_kv_count
 *   metadata_kv_count × { string key | u32 value_type | value }
 *   tensor_count × { string name | u32 n_dims | n_dims × u64 ne (ne0 first: the contiguous
 *                    dimension) | u32 ggml_type | u64 offset (relative to the data section) }
 *   zero padding to `general.alignment` (u32, default 32) | tensor data, each tensor aligned
 * string = u64 length + UTF-8 bytes; array = u32 item type + u64 count + items (arrays nest).
 * Version 1 used u32 counts and lengths; llama.cpp no longer reads it, nor do we.
 *
 * @example
 *   const src = fromBlob(file);
 *   const gguf = await readGgufHeader(src);
 *   const config = llamaConfigFromGguf(gguf);
 *   for (const t of llamaTensorsFromGguf(gguf, config)) {
 *     const w = dequantizeTensor(t.info, await readTensorBytes(gguf, src, t.info));
 *   }
 */
import { EngineError, formatBytes } from '../errors.ts';
import { dequantizeQ4_0, dequantizeQ8_0, f16ToF32 } from '../quant.ts';
import { dequantizeQ4_K, dequantizeQ6_K } from '../quant-k.ts';
import type { ByteSource } from './bytesource.ts';

import {
  GGML_TYPES,
  REMOVED_TYPES,
  type SupportedGgmlType,
  isSupportedType,
  unsupported,
  type GgufValueType,
  GGUF_VALUE_TYPES,
  type GgufScalar,
  type GgufArray,
  type GgufKV,
  FIXED_SIZE,
} from './gguf-types.ts';

export * from './gguf-types.ts';

// ---------------------------------------------------------------------------------------------
// the file

export interface GgufTensorInfo {
  readonly name: string;
  /** ggml order, ne0 first: dims[0] is the contiguous dimension (an N×K matrix is [K, N]). */
  readonly dims: readonly number[];
  /** ggml type id (GGML_TYPES). */
  readonly type: number;
  readonly typeName: string;
  /** Offset within the data section, as stored. */
  readonly offset: number;
  /** Absolute offset in the file. */
  readonly fileOffset: number;
  readonly nElements: number;
  readonly byteSize: number;
}

export interface GgufFile {
  readonly name: string;
  /** File size in bytes. */
  readonly size: number;
  readonly version: 2 | 3;
  readonly alignment: number;
  readonly metadata: ReadonlyMap<string, GgufKV>;
  /** In file order. */
  readonly tensors: readonly GgufTensorInfo[];
  readonly tensorsByName: ReadonlyMap<string, GgufTensorInfo>;
  /** Bytes of header, metadata and tensor infos (before the padding). */
  readonly headerSize: number;
  /** Absolute offset of the data section (headerSize rounded up to the alignment). */
  readonly dataOffset: number;
}

export interface ReadGgufOptions {
  /** Bytes of the first header read (doubling on each further read up to 8 MiB). Default 256 KiB. */
  firstChunk?: number;
}

const GGUF_MAGIC = 0x46554747; // "GGUF" read as little-endian u32
const OLD_MAGICS: Record<number, string> = {
  0x67676d6c: 'GGML',
  0x67676d66: 'GGMF',
  0x67676a74: 'GGJT',
};
const MAX_TENSORS = 1 << 20;
const MAX_KV = 1 << 20;
const MAX_ARRAY = 1 << 30; // ggml's GGUF_MAX_ARRAY_ELEMENTS
const MAX_STRING = 1 << 30; // ggml's GGUF_MAX_STRING_LENGTH
const MAX_DIMS = 4; // ggml's GGML_MAX_DIMS
const MAX_NESTING = 16;
const MAX_CHUNK = 8 << 20;
const DEFAULT_ALIGNMENT = 32;

const fmt = (v: number): string => v.toLocaleString('en-US');
const utf8 = new TextDecoder('utf-8');

/** Reads the header front to back, fetching the source in growing chunks as it goes. */
class HeaderReader {
  private buf = new Uint8Array(0);
  private view = new DataView(this.buf.buffer);
  private start = 0; // file offset of buf[0]
  pos = 0;
  /** What is being read, for messages. */
  what = 'the header';
  private chunk: number;

  constructor(
    private readonly src: ByteSource,
    firstChunk: number,
  ) {
    this.chunk = Math.max(16, firstChunk);
  }

  private get name(): string {
    return this.src.name;
  }

  bad(msg: string): EngineError {
    return new EngineError('BAD_FILE', `${this.name}: ${msg}: the file is corrupt or not a GGUF model.`);
  }

  truncated(end: number): EngineError {
    const size = this.src.size;
    return new EngineError(
      'TRUNCATED_FILE',
      `${this.name} ends after ${fmt(size)} bytes, inside its header (reading ${this.what} needs bytes up to ${fmt(end)}): the download stopped early or the file is damaged — fetch it again.`,
    );
  }

  /** Makes bytes [pos, pos + k) available. */
  async need(k: number): Promise<void> {
    const end = this.pos + k;
    if (end <= this.start + this.buf.length) return;
    if (end > this.src.size) throw this.truncated(end);
    const from = this.start + this.buf.length; // pos never passes the buffered end
    const len = Math.min(this.src.size - from, Math.max(end - from, this.chunk));
    this.chunk = Math.min(this.chunk * 2, MAX_CHUNK);
    const fresh = await this.src.read(from, len);
    const keep = this.buf.subarray(this.pos - this.start);
    const next = new Uint8Array(keep.length + fresh.length);
    next.set(keep);
    next.set(fresh, keep.length);
    this.buf = next;
    this.view = new DataView(next.buffer);
    this.start = this.pos;
  }

  /** Bytes left in the file after pos. */
  get remaining(): number {
    return this.src.size - this.pos;
  }

  private at(k: number): number {
    const o = this.pos - this.start;
    this.pos += k;
    return o;
  }

  async u32(): Promise<number> {
    await this.need(4);
    return this.view.getUint32(this.at(4), true);
  }

  /** A u64 count or offset as a number; null when ≥ 2^53. */
  async u64n(): Promise<number | null> {
    await this.need(8);
    const o = this.at(8);
    const lo = this.view.getUint32(o, true);
    const hi = this.view.getUint32(o + 4, true);
    return hi >= 1 << 21 ? null : hi * 2 ** 32 + lo;
  }

  async string(): Promise<string> {
    const len = await this.u64n();
    if (len === null || len > MAX_STRING) throw this.bad(`${this.what} has a string length beyond 1 GiB`);
    await this.need(len);
    const o = this.at(len);
    return utf8.decode(this.buf.subarray(o, o + len));
  }

  /** One scalar of a fixed-size type; the bytes must be available. */
  scalar(t: GgufValueType): GgufScalar {
    const v = this.view;
    switch (t) {
      case 'u8':
        return v.getUint8(this.at(1));
      case 'i8':
        return v.getInt8(this.at(1));
      case 'u16':
        return v.getUint16(this.at(2), true);
      case 'i16':
        return v.getInt16(this.at(2), true);
      case 'u32':
        return v.getUint32(this.at(4), true);
      case 'i32':
        return v.getInt32(this.at(4), true);
      case 'f32':
        return v.getFloat32(this.at(4), true);
      case 'u64':
        return v.getBigUint64(this.at(8), true);
      case 'i64':
        return v.getBigInt64(this.at(8), true);
      case 'f64':
        return v.getFloat64(this.at(8), true);
      case 'bool': {
        const b = v.getUint8(this.at(1));
        if (b > 1) throw this.bad(`${this.what} is a bool stored as ${b} (only 0 and 1 are valid)`);
        return b === 1;
      }
      default:
        throw new Error(`not a fixed-size type: ${t}`);
    }
  }

  async valueType(): Promise<GgufValueType> {
    const id = await this.u32();
    const t = GGUF_VALUE_TYPES[id];
    if (t === undefined) throw this.bad(`${this.what} has value type ${id}, which GGUF does not define`);
    return t;
  }

  async value(t: GgufValueType, depth = 0): Promise<GgufKV['value']> {
    if (t === 'string') return this.string();
    if (t === 'array') return this.array(depth);
    await this.need(FIXED_SIZE[t]!);
    return this.scalar(t);
  }

  async array(depth: number): Promise<GgufArray> {
    if (depth >= MAX_NESTING) throw this.bad(`${this.what} nests arrays more than ${MAX_NESTING} deep`);
    const itemType = await this.valueType();
    const count = await this.u64n();
    if (count === null || count > MAX_ARRAY) {
      throw this.bad(`${this.what} is an array of ${count ?? 'more than 2^53'} items, beyond any real model`);
    }
    const min = FIXED_SIZE[itemType] ?? (itemType === 'string' ? 8 : 12);
    if (count * min > this.remaining) throw this.truncated(this.pos + count * min);
    const fixed = FIXED_SIZE[itemType];
    if (fixed !== undefined) {
      await this.need(count * fixed);
      const items: GgufScalar[] = new Array<GgufScalar>(count);
      for (let i = 0; i < count; i++) items[i] = this.scalar(itemType);
      return { itemType, items };
    }
    if (itemType === 'string') {
      const items: string[] = new Array<string>(count);
      for (let i = 0; i < count; i++) items[i] = await this.string();
      return { itemType, items };
    }
    const items: GgufArray[] = new Array<GgufArray>(count);
    for (let i = 0; i < count; i++) items[i] = await this.array(depth + 1);
    return { itemType, items };
  }
}

/**
 * Reads a GGUF header (metadata and tensor infos) without reading tensor data, and validates it:
 * BAD_MAGIC (not GGUF), BAD_FILE (version 1, big-endian, unknown types, absurd counts, misaligned
 * or overlapping tensors, ...), TRUNCATED_FILE (the header or a tensor runs past the end).
 */
export async function readGgufHeader(src: ByteSource, opts: ReadGgufOptions = {}): Promise<GgufFile> {
  const name = src.name;
  const r = new HeaderReader(src, opts.firstChunk ?? 256 << 10);
  if (src.size < 4) {
    throw new EngineError(
      'TRUNCATED_FILE',
      `${name} is ${src.size} bytes, too short to be a GGUF file: the download stopped early — fetch it again.`,
    );
  }
  r.what = 'the magic number';
  const magic = await r.u32();
  if (magic !== GGUF_MAGIC) {
    const old = OLD_MAGICS[magic];
    const head = await src.read(0, 4);
    const shown = Array.from(head, (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new EngineError(
      'BAD_MAGIC',
      old
        ? `${name} is a ${old} file, llama.cpp's format from before GGUF (2023): convert it to GGUF with llama.cpp, or download a .gguf version of the model.`
        : `${name} is not a GGUF file: it starts with bytes ${shown}, not "GGUF". Choose a .gguf model file (llama.cpp's format).`,
    );
  }
  r.what = 'the version';
  const version = await r.u32();
  if (version !== 2 && version !== 3) {
    let why: string;
    if (version === 1) {
      why = `uses GGUF version 1, an early format (August 2023) that llama.cpp itself no longer reads: download a newer conversion of the model (GGUF version 2 or 3)`;
    } else if (version !== 0 && (version & 0xffff) === 0) {
      why = `is a big-endian GGUF file (its version reads as ${version} on this machine): download the ordinary little-endian file`;
    } else if (version > 3) {
      why = `uses GGUF version ${version}, newer than dust2gold reads (2 and 3): download a version 3 file or update dust2gold`;
    } else {
      why = `has GGUF version ${version}, which does not exist: the file is corrupt`;
    }
    throw new EngineError('BAD_FILE', `${name} ${why}.`);
  }
  r.what = 'the tensor count';
  const nTensors = await r.u64n();
  if (nTensors === null || nTensors > MAX_TENSORS) {
    throw r.bad(`the header says it holds ${nTensors ?? 'more than 2^53'} tensors, beyond any real model`);
  }
  r.what = 'the metadata count';
  const nKv = await r.u64n();
  if (nKv === null || nKv > MAX_KV) {
    throw r.bad(
      `the header says it holds ${nKv ?? 'more than 2^53'} metadata entries, beyond any real model`,
    );
  }

  const metadata = new Map<string, GgufKV>();
  for (let i = 0; i < nKv; i++) {
    r.what = `metadata entry ${i + 1} of ${nKv}`;
    const key = await r.string();
    r.what = `metadata entry ${i + 1} of ${nKv} ("${key}")`;
    if (key.length === 0) throw r.bad(`${r.what} has an empty key`);
    if (metadata.has(key)) throw r.bad(`the metadata key "${key}" appears twice`);
    const type = await r.valueType();
    const value = await r.value(type);
    metadata.set(key, { type, value } as GgufKV);
  }

  let alignment = DEFAULT_ALIGNMENT;
  const al = metadata.get('general.alignment');
  if (al) {
    const v = al.type === 'u32' ? al.value : NaN;
    if (!(Number.isInteger(v) && v > 0 && (v & (v - 1)) === 0)) {
      throw r.bad(`general.alignment is ${String(al.value)} (${al.type}); it must be a u32 power of two`);
    }
    alignment = v;
  }

  interface Raw {
    name: string;
    dims: number[];
    type: number;
    offset: number;
  }
  const raws: Raw[] = [];
  const names = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    r.what = `tensor info ${i + 1} of ${nTensors}`;
    const tname = await r.string();
    r.what = `tensor info ${i + 1} of ${nTensors} ("${tname}")`;
    if (names.has(tname)) throw r.bad(`the tensor name "${tname}" appears twice`);
    names.add(tname);
    const nDims = await r.u32();
    if (nDims > MAX_DIMS) throw r.bad(`tensor ${tname} has ${nDims} dimensions (at most ${MAX_DIMS})`);
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) {
      const ne = await r.u64n();
      if (ne === null) throw r.bad(`tensor ${tname} has a dimension of 2^53 or more`);
      dims.push(ne);
    }
    const type = await r.u32();
    const offset = await r.u64n();
    if (offset === null) throw r.bad(`tensor ${tname} has a data offset of 2^53 or more`);
    raws.push({ name: tname, dims, type, offset });
  }
  const headerSize = r.pos;
  const dataOffset = alignUp(headerSize, alignment);

  const tensors: GgufTensorInfo[] = [];
  for (const t of raws) {
    const info = GGML_TYPES[t.type];
    if (!info) {
      throw new EngineError(
        'BAD_FILE',
        REMOVED_TYPES[t.type]
          ? `${name}: tensor ${t.name} is ${REMOVED_TYPES[t.type]}, a layout llama.cpp no longer stores in files: download a current GGUF conversion of the model.`
          : `${name}: tensor ${t.name} has ggml type ${t.type}, which is not a type GGUF defines: the file is corrupt, or from a llama.cpp newer than dust2gold knows.`,
      );
    }
    let nElements = 1;
    for (const ne of t.dims) nElements *= ne;
    if (!Number.isSafeInteger(nElements)) throw r.bad(`tensor ${t.name} has more than 2^53 values`);
    if ((t.dims[0] ?? 1) % info.blockSize !== 0) {
      throw r.bad(
        `tensor ${t.name} is ${info.name} with rows of ${t.dims[0] ?? 1} values, not a multiple of its block size ${info.blockSize}`,
      );
    }
    if (t.offset % alignment !== 0) {
      throw new EngineError(
        'BAD_FILE',
        `${name}: tensor ${t.name} starts at byte ${fmt(t.offset)} of the data section, not a multiple of the file's alignment (${alignment} bytes): the file is corrupt — download it again.`,
      );
    }
    const byteSize = (nElements / info.blockSize) * info.typeSize;
    const fileOffset = dataOffset + t.offset;
    if (!Number.isSafeInteger(fileOffset + byteSize)) throw r.bad(`tensor ${t.name} lies beyond 2^53 bytes`);
    tensors.push({
      name: t.name,
      dims: t.dims,
      type: t.type,
      typeName: info.name,
      offset: t.offset,
      fileOffset,
      nElements,
      byteSize,
    });
  }

  const byStart = [...tensors].sort((a, b) => a.fileOffset - b.fileOffset);
  for (let i = 1; i < byStart.length; i++) {
    const a = byStart[i - 1]!;
    const b = byStart[i]!;
    if (a.fileOffset + a.byteSize > b.fileOffset) {
      throw new EngineError(
        'BAD_FILE',
        `${name}: tensors ${a.name} (bytes ${fmt(a.fileOffset)}–${fmt(a.fileOffset + a.byteSize)}) and ${b.name} (from byte ${fmt(b.fileOffset)}) overlap: the file is corrupt — download it again.`,
      );
    }
  }
  const last = byStart[byStart.length - 1];
  const needed = last ? last.fileOffset + last.byteSize : headerSize;
  if (needed > src.size) {
    const first = byStart.find((t) => t.fileOffset + t.byteSize > src.size)!;
    throw new EngineError(
      'TRUNCATED_FILE',
      `${name} ends after ${fmt(src.size)} of ${fmt(needed)} bytes (${formatBytes(src.size)} of ${formatBytes(needed)}): tensor ${first.name} (bytes ${fmt(first.fileOffset)}–${fmt(first.fileOffset + first.byteSize)}) is missing or cut off: the download stopped early (or the header is corrupt) — fetch the file again.`,
    );
  }

  return {
    name,
    size: src.size,
    version,
    alignment,
    metadata,
    tensors,
    tensorsByName: new Map(tensors.map((t) => [t.name, t])),
    headerSize,
    dataOffset,
  };
}

function alignUp(v: number, a: number): number {
  return Math.ceil(v / a) * a;
}

// ---------------------------------------------------------------------------------------------
// tensor data

function checkSource(file: GgufFile, src: ByteSource, info: GgufTensorInfo): void {
  if (src.size !== file.size) {
    throw new EngineError(
      'BAD_ARGUMENT',
      `${src.name} is ${fmt(src.size)} bytes but its GGUF header was read from a ${fmt(file.size)}-byte file: pass the same file to readGgufHeader and readTensorBytes.`,
    );
  }
  if (file.tensorsByName.get(info.name) !== info) {
    throw new EngineError('BAD_ARGUMENT', `${info.name} is not a tensor of ${file.name}'s header.`);
  }
}

/** The bytes of one tensor (`info.byteSize` of them). */
export async function readTensorBytes(
  file: GgufFile,
  src: ByteSource,
  info: GgufTensorInfo,
): Promise<Uint8Array> {
  checkSource(file, src, info);
  return src.read(info.fileOffset, info.byteSize);
}

export interface GgufTensorChunk {
  /** Index of the chunk's first value in the tensor. */
  readonly start: number;
  /** Number of values in the chunk (whole rows, or whole blocks when one row is bigger than the chunk). */
  readonly count: number;
  readonly bytes: Uint8Array;
}

/**
 * One tensor in chunks of at most `chunkBytes` (at least one block): whole rows when a row fits,
 * else whole blocks, so every chunk can be dequantized on its own.
 */
export async function* readTensorChunks(
  file: GgufFile,
  src: ByteSource,
  info: GgufTensorInfo,
  chunkBytes = 16 << 20,
): AsyncGenerator<GgufTensorChunk> {
  checkSource(file, src, info);
  const t = GGML_TYPES[info.type]!;
  const rowValues = info.dims[0] ?? 1;
  const rowBytes = (rowValues / t.blockSize) * t.typeSize;
  const unitValues =
    rowBytes > 0 && rowBytes <= chunkBytes
      ? rowValues * Math.floor(chunkBytes / rowBytes)
      : t.blockSize * Math.max(1, Math.floor(chunkBytes / t.typeSize));
  for (let start = 0; start < info.nElements; start += unitValues) {
    const count = Math.min(unitValues, info.nElements - start);
    const offset = (start / t.blockSize) * t.typeSize;
    const len = (count / t.blockSize) * t.typeSize;
    yield { start, count, bytes: await src.read(info.fileOffset + offset, len) };
  }
}

let f16Table: Float32Array | null = null;

/** `n` values of type `id` from their bytes (a whole tensor or a chunk of whole blocks), in f32. */
export function dequantizeGgml(id: number, bytes: Uint8Array, n: number, what = 'tensor'): Float32Array {
  if (!isSupportedType(id)) throw unsupported(what, id);
  const t = GGML_TYPES[id]!;
  if (n % t.blockSize !== 0 || bytes.byteLength !== (n / t.blockSize) * t.typeSize) {
    throw new EngineError(
      'SHAPE_MISMATCH',
      `${what}: ${bytes.byteLength} bytes do not hold ${n} ${t.name} values (${t.typeSize} bytes per ${t.blockSize}).`,
    );
  }
  switch (t.name as SupportedGgmlType) {
    case 'F32': {
      const out = new Float32Array(n);
      new Uint8Array(out.buffer).set(bytes); // GGUF is little-endian, like every WebGPU host
      return out;
    }
    case 'F16': {
      if (!f16Table) {
        f16Table = new Float32Array(65536);
        for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32(h);
      }
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = f16Table[bytes[2 * i]! | (bytes[2 * i + 1]! << 8)]!;
      return out;
    }
    case 'Q4_0':
      return dequantizeQ4_0(bytes, n);
    case 'Q8_0':
      return dequantizeQ8_0(bytes, n);
    case 'Q4_K':
      return dequantizeQ4_K(bytes, n);
    case 'Q6_K':
      return dequantizeQ6_K(bytes, n);
  }
}

/** A whole tensor in f32 (CPU reference; ggml order: dims[0] varies fastest). */
export function dequantizeTensor(info: GgufTensorInfo, bytes: Uint8Array): Float32Array {
  return dequantizeGgml(info.type, bytes, info.nElements, info.name);
}
