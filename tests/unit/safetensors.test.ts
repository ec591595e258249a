import { describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.ts';
import { f16ToF32, readSafetensors, toFloat32, writeSafetensors } from '../../src/engine/io/safetensors.ts';

function expectError(f: () => unknown, code: string, message: RegExp): void {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(EngineError);
    expect((e as EngineError).code).toBe(code);
    expect((e as EngineError).message).toMatch(message);
    return;
  }
  throw new Error(`expected EngineError ${code}`);
}

/** A file from a raw header object and data length (to write broken files). */
function rawFile(header: unknown, dataBytes: number, headerText?: string): ArrayBuffer {
  const json = new TextEncoder().encode(headerText ?? JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out.buffer;
}

describe('safetensors', () => {
  it('round-trips tensors and metadata', () => {
    const w = Float32Array.from([1, -2.5, 3e-8, 1e30, -0, 7]);
    const f16 = Uint16Array.from([0x3c00, 0xc000, 0x0001, 0x7c00]); // 1, -2, 2^-24, Inf
    const bf16 = Uint16Array.from([0x3f80, 0xc0a0]); // 1, -5
    const ids = Int32Array.from([1, -2, 3]);
    const bytes = writeSafetensors(
      {
        w: { dtype: 'F32', shape: [2, 3], data: w },
        h: { dtype: 'F16', shape: [4], data: f16 },
        b: { dtype: 'BF16', shape: [2, 1], data: bf16 },
        ids: { dtype: 'I32', shape: [3], data: ids },
        empty: { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
      },
      { format: 'pt', step: '10' },
    );
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + n) % 8).toBe(0); // data starts aligned; the header is padded with spaces
    expect(
      new TextDecoder()
        .decode(bytes.subarray(8, 8 + n))
        .trimEnd()
        .endsWith('}'),
    ).toBe(true);
    const { metadata, tensors } = readSafetensors(bytes.buffer as ArrayBuffer);
    expect(metadata).toEqual({ format: 'pt', step: '10' });
    expect([...tensors.keys()].sort()).toEqual(['b', 'empty', 'h', 'ids', 'w']);
    expect(tensors.get('w')!.shape).toEqual([2, 3]);
    expect(Array.from(toFloat32(tensors.get('w')!))).toEqual(Array.from(w));
    expect(Array.from(toFloat32(tensors.get('h')!))).toEqual([1, -2, 2 ** -24, Infinity]);
    expect(Array.from(toFloat32(tensors.get('b')!))).toEqual([1, -5]);
    const i = tensors.get('ids')!;
    expect(i.dtype).toBe('I32');
    expect(Array.from(new Int32Array(i.data.slice().buffer))).toEqual([1, -2, 3]);
    expect(tensors.get('empty')!.data.length).toBe(0);
    expectError(() => toFloat32(i), 'BAD_ARGUMENT', /not a float format/);
  });

  it('converts f16 like IEEE', () => {
    expect(f16ToF32(0x3555)).toBeCloseTo(0.333251953125, 12);
    expect(f16ToF32(0x7bff)).toBe(65504);
    expect(f16ToF32(0x8000)).toBe(-0);
    expect(f16ToF32(0x7e00)).toBeNaN();
  });

  it('rejects broken files with typed errors', () => {
    const t = (begin: number, end: number, dtype = 'F32', shape = [2]) => ({
      dtype,
      shape,
      data_offsets: [begin, end],
    });
    expectError(() => readSafetensors(new ArrayBuffer(4)), 'TRUNCATED_FILE', /8-byte header length/);
    expectError(
      () => readSafetensors(rawFile({ a: t(0, 8) }, 8).slice(0, 12)),
      'TRUNCATED_FILE',
      /the header needs/,
    );
    expectError(
      () => readSafetensors(rawFile({ a: t(0, 8) }, 4)),
      'TRUNCATED_FILE',
      /describes 8 bytes of data but the file has 4/,
    );
    expectError(() => readSafetensors(rawFile(null, 0, '{"a": ')), 'BAD_FILE', /not valid JSON/);
    expectError(() => readSafetensors(rawFile(null, 0, '[1, 2]')), 'BAD_FILE', /not a JSON object/);
    expectError(() => readSafetensors(rawFile({ a: t(0, 8, 'F33') }, 8)), 'BAD_FILE', /unknown dtype F33/);
    expectError(
      () => readSafetensors(rawFile({ a: t(0, 8, 'F32', [2, -1]) }, 8)),
      'BAD_FILE',
      /invalid shape/,
    );
    expectError(
      () => readSafetensors(rawFile({ a: t(0, 12) }, 12)),
      'BAD_FILE',
      /needs 8 bytes but its offsets span 12/,
    );
    expectError(
      () => readSafetensors(rawFile({ a: t(8, 0) }, 8)),
      'BAD_FILE',
      /ends \(0\) before it begins \(8\)/,
    );
    expectError(
      () => readSafetensors(rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0] } }, 8)),
      'BAD_FILE',
      /invalid data_offsets/,
    );
    expectError(() => readSafetensors(rawFile({ a: t(0, 8), b: t(4, 12) }, 12)), 'BAD_FILE', /overlaps/);
    expectError(
      () => readSafetensors(rawFile({ a: t(0, 8), b: t(12, 20) }, 20)),
      'BAD_FILE',
      /hole of 4 bytes/,
    );
    expectError(
      () => readSafetensors(rawFile({ a: t(0, 8) }, 12)),
      'BAD_FILE',
      /4 bytes after the last tensor/,
    );
    expectError(
      () => readSafetensors(rawFile({ __metadata__: { step: 10 } }, 0)),
      'BAD_FILE',
      /__metadata__\.step is not a string/,
    );
    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true);
    expectError(() => readSafetensors(huge.buffer), 'BAD_FILE', /header length .* out of range/);
  });

  it('refuses to write data that does not match its shape', () => {
    expectError(
      () => writeSafetensors({ a: { dtype: 'F32', shape: [3], data: new Float32Array(2) } }),
      'SHAPE_MISMATCH',
      /needs 12 bytes but its data has 8/,
    );
    expectError(
      () => writeSafetensors({ __metadata__: { dtype: 'U8', shape: [0], data: new Uint8Array(0) } }),
      'BAD_ARGUMENT',
      /reserved/,
    );
  });
});
