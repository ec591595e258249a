/**
 * safetensors (huggingface/safetensors): u64 little-endian header length N, N bytes of JSON
 * `{ name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__"?: { string: string } }`
 * (padded with spaces so the data starts 8-byte aligned), then the data; offsets are relative to
 * the data start. As in the reference implementation, tensors must tile the data exactly: no
 * holes, no overlaps, nothing after the last tensor.
 *
 * @example
 *   const bytes = writeSafetensors({ w: { dtype: 'F32', shape: [2, 3], data: new Float32Array(6) } }, { step: '10' });
 *   const { tensors } = readSafetensors(bytes.buffer);
 *   toFloat32(tensors.get('w')!); // Float32Array(6)
 */
import { EngineError } from '../errors.ts';

export const DTYPE_BYTES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
} as const;
export type Dtype = keyof typeof DTYPE_BYTES;

export interface SafetensorEntry {
  dtype: Dtype;
  shape: number[];
  /** A view into the file's buffer (not necessarily aligned to the dtype). */
  data: Uint8Array;
}

const MAX_HEADER = 100_000_000; // the reference implementation's limit

function bad(msg: string): never {
  throw new EngineError('BAD_FILE', `safetensors: ${msg}: the file is corrupt or not a safetensors file.`);
}

/** Parses a safetensors file. Throws TRUNCATED_FILE (shorter than its header says) or BAD_FILE. */
export function readSafetensors(buf: ArrayBuffer): {
  metadata: Record<string, string>;
  tensors: Map<string, SafetensorEntry>;
} {
  if (buf.byteLength < 8)
    throw new EngineError(
      'TRUNCATED_FILE',
      `safetensors: the file is ${buf.byteLength} bytes, shorter than the 8-byte header length: the file is incomplete — download it again.`,
    );
  const v = new DataView(buf);
  const n = v.getUint32(0, true) + v.getUint32(4, true) * 2 ** 32;
  if (n < 2 || n > MAX_HEADER) bad(`header length ${n} is out of range`);
  if (8 + n > buf.byteLength)
    throw new EngineError(
      'TRUNCATED_FILE',
      `safetensors: the header needs ${8 + n} bytes but the file has ${buf.byteLength}: the file is incomplete — download it again.`,
    );
  const text = new TextDecoder('utf-8', { fatal: false }).decode(new Uint8Array(buf, 8, n));
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch {
    bad('the header is not valid JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    bad('the header is not a JSON object');
  const dataStart = 8 + n;
  const dataLen = buf.byteLength - dataStart;
  const metadata: Record<string, string> = {};
  const entries: { name: string; dtype: Dtype; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) bad('__metadata__ is not an object');
      for (const [k, val] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof val !== 'string') bad(`__metadata__.${k} is not a string`);
        metadata[k] = val;
      }
      continue;
    }
    const t = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    if (typeof t !== 'object' || t === null) bad(`tensor ${name} is not an object`);
    if (typeof t.dtype !== 'string' || !(t.dtype in DTYPE_BYTES))
      bad(`tensor ${name} has unknown dtype ${String(t.dtype)}`);
    const dtype = t.dtype as Dtype;
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isInteger(d) && d >= 0))
      bad(`tensor ${name} has an invalid shape`);
    const shape = t.shape as number[];
    const off = t.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((x) => Number.isInteger(x) && x >= 0))
      bad(`tensor ${name} has invalid data_offsets`);
    const [begin, end] = off as [number, number];
    if (end < begin) bad(`tensor ${name} ends (${end}) before it begins (${begin})`);
    const bytes = shape.reduce((a, d) => a * d, 1) * DTYPE_BYTES[dtype];
    if (end - begin !== bytes)
      bad(
        `tensor ${name} (${dtype} ${JSON.stringify(shape)}) needs ${bytes} bytes but its offsets span ${end - begin}`,
      );
    entries.push({ name, dtype, shape, begin, end });
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  for (const e of entries) {
    if (e.begin < pos)
      bad(`tensor ${e.name} overlaps the previous tensor (starts at ${e.begin}, previous ends at ${pos})`);
    if (e.begin > pos) bad(`a hole of ${e.begin - pos} bytes before tensor ${e.name}`);
    pos = e.end;
  }
  if (pos > dataLen)
    throw new EngineError(
      'TRUNCATED_FILE',
      `safetensors: the header describes ${pos} bytes of data but the file has ${dataLen}: the file is incomplete — download it again.`,
    );
  if (pos < dataLen) bad(`${dataLen - pos} bytes after the last tensor`);
  const tensors = new Map<string, SafetensorEntry>();
  for (const e of entries)
    tensors.set(e.name, {
      dtype: e.dtype,
      shape: e.shape,
      data: new Uint8Array(buf, dataStart + e.begin, e.end - e.begin),
    });
  return { metadata, tensors };
}

/** Writes tensors in the order given, contiguously, after a space-padded 8-byte-aligned header. */
export function writeSafetensors(
  tensors: Record<string, { dtype: Dtype; shape: number[]; data: ArrayBufferView }>,
  metadata?: Record<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let pos = 0;
  for (const [name, t] of Object.entries(tensors)) {
    if (name === '__metadata__')
      throw new EngineError(
        'BAD_ARGUMENT',
        'writeSafetensors: "__metadata__" is reserved: rename the tensor.',
      );
    if (!(t.dtype in DTYPE_BYTES))
      throw new EngineError('BAD_ARGUMENT', `writeSafetensors: tensor ${name} has unknown dtype ${t.dtype}.`);
    const bytes = t.shape.reduce((a, d) => a * d, 1) * DTYPE_BYTES[t.dtype];
    if (t.data.byteLength !== bytes) {
      throw new EngineError(
        'SHAPE_MISMATCH',
        `writeSafetensors: tensor ${name} (${t.dtype} ${JSON.stringify(t.shape)}) needs ${bytes} bytes but its data has ${t.data.byteLength}: pass data that matches the shape.`,
      );
    }
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [pos, pos + bytes] };
    pos += bytes;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil((8 + json.length) / 8) * 8 - 8;
  if (padded > json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + pos);
  const v = new DataView(out.buffer);
  v.setUint32(0, json.length % 2 ** 32, true);
  v.setUint32(4, Math.floor(json.length / 2 ** 32), true);
  out.set(json, 8);
  let o = 8 + json.length;
  for (const t of Object.values(tensors)) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), o);
    o += t.data.byteLength;
  }
  return out;
}

/** F32, F16, BF16 (and F64) data as a new Float32Array. */
export function toFloat32(entry: SafetensorEntry): Float32Array {
  const { dtype, data } = entry;
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const n = data.byteLength / DTYPE_BYTES[dtype];
  const out = new Float32Array(n);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) out[i] = v.getFloat32(4 * i, true);
      return out;
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = v.getFloat64(8 * i, true);
      return out;
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = f16ToF32(v.getUint16(2 * i, true));
      return out;
    case 'BF16': {
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u[i] = v.getUint16(2 * i, true) << 16;
      return out;
    }
    default:
      throw new EngineError(
        'BAD_ARGUMENT',
        `toFloat32: dtype ${dtype} is not a float format (F32, F16, BF16, F64).`,
      );
  }
}

/** IEEE half → number (subnormals, ±Inf and NaN included). */
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
