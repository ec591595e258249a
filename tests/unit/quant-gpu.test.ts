/**
 * The GPU layouts of q4f16_1 / q4_k / q6_k weights (src/engine/quant-gpu.ts): the packers against a
 * reader written here from the layout's description alone, hand-built blocks, sizes, MLC's bytes,
 * the CPU backend's `weight`, and the typed errors.
 */
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../../src/engine/backend/cpu.ts';
import { EngineError } from '../../src/engine/errors.ts';
import { byteSize } from '../../src/engine/gpu/tensor.ts';
import { dequantizeMlcQ4, quantizeMlcQ4, type MlcQ4 } from '../../src/engine/io/mlc-quant.ts';
import {
  dequantizeWeight,
  fileBytes,
  mlcQ4Bytes,
  mlcQ4FromBytes,
  packQ4_K,
  packQ4f16_1,
  packQ6_K,
  packWeight,
  quantizeWeight,
  type FileQuantDType,
} from '../../src/engine/quant-gpu.ts';
import { dequantizeQ4_K, dequantizeQ6_K, quantizeQ4_K, quantizeQ6_K } from '../../src/engine/quant-k.ts';
import { f16ToF32, f32ToF16 } from '../../src/engine/quant.ts';
import { randArray } from '../helpers/fd.ts';

const fround = Math.fround;

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

/**
 * W[n, k] read from the packed words the way the layout says (the kernels' law, written
 * independently of the packers): byte i of the buffer is byte i % 4 of word i / 4.
 */
function readPacked(dtype: FileQuantDType, words: Uint32Array, N: number, K: number): Float32Array {
  const byte = (i: number): number => (words[i >>> 2]! >>> (8 * (i & 3))) & 0xff;
  const half = (wordBase: number, i: number): number =>
    f16ToF32((words[wordBase + (i >>> 1)]! >>> (16 * (i & 1))) & 0xffff);
  const out = new Float32Array(N * K);
  for (let i = 0; i < N * K; i++) {
    if (dtype === 'q4f16_1') {
      // nibble words (element i in word i/8, nibble i%8), then an f16 scale per 32
      const q = (words[i >>> 3]! >>> (4 * (i & 7))) & 15;
      out[i] = (q - 7) * half((N * K) / 8, i >>> 5);
    } else if (dtype === 'q4_k') {
      // 144-byte blocks: d, dmin, 12 scale bytes, 128 quant bytes (64 values per 32 bytes)
      const b = 144 * (i >>> 8);
      const r = i & 255;
      const j = r >>> 5;
      const s = (t: number): number => byte(b + 4 + t);
      const sc = j < 4 ? s(j) & 63 : (s(j + 4) & 15) | ((s(j - 4) >> 6) << 4);
      const m = j < 4 ? s(j + 4) & 63 : (s(j + 4) >> 4) | ((s(j) >> 6) << 4);
      const q = (byte(b + 16 + 32 * (j >> 1) + (r & 31)) >> (4 * (j & 1))) & 15;
      out[i] = fround(fround(half(36 * (i >>> 8), 0) * sc) * q - fround(half(36 * (i >>> 8), 1) * m));
    } else {
      // 208-byte bodies (ql 128, qh 64, int8 scales 16), then an f16 d per block
      const sb = i >>> 8;
      const b = 208 * sb;
      const r = i & 255;
      const hh = r >> 7;
      const run = (r & 127) >> 5; // values 32·run + l of the half
      const l = r & 31;
      const ql = (byte(b + 64 * hh + 32 * (run & 1) + l) >> (4 * (run >> 1))) & 15;
      const qh = (byte(b + 128 + 32 * hh + l) >> (2 * run)) & 3;
      const sc = (byte(b + 192 + 8 * hh + (l >> 4) + 2 * run) << 24) >> 24;
      const d = half((208 * ((N * K) / 256)) / 4, sb);
      out[i] = fround(fround(d * sc) * ((ql | (qh << 4)) - 32));
    }
  }
  return out;
}

const DTYPES: readonly FileQuantDType[] = ['q4f16_1', 'q4_k', 'q6_k'];

describe('GPU layouts of q4f16_1, q4_k, q6_k', () => {
  // 3 × 512: 6 super-blocks; 5 × 256: 5 (an odd count: q6_k's last d word is half padding);
  // 7 × 96 (q4f16_1 only): 21 scales, also odd
  for (const dtype of DTYPES) {
    for (const [N, K] of [
      [3, 512],
      [5, 256],
      [7, 96],
    ] as const) {
      if (dtype !== 'q4f16_1' && K % 256 !== 0) continue;
      it(`${dtype} ${N}×${K}: the packed words read back to the reference's values`, () => {
        const w = randArray(Float32Array, N * K, N * K + 1);
        const bytes = quantizeWeight(dtype, w, N, K);
        expect(bytes.length).toBe(fileBytes(dtype, N, K));
        const packed = packWeight(dtype, bytes, N, K);
        expect(packed.byteLength).toBe(byteSize([N, K], dtype));
        const expected = dequantizeWeight(dtype, bytes, N, K);
        expect(readPacked(dtype, packed, N, K)).toEqual(expected);
        // and the values are the quantizer's: within its rounding of w
        let err = 0;
        for (let i = 0; i < w.length; i++) err = Math.max(err, Math.abs(expected[i]! - w[i]!));
        expect(err).toBeGreaterThan(0);
        expect(err).toBeLessThan(dtype === 'q6_k' ? 0.04 : 0.15);
      });
    }
  }

  it('file sizes of LLaMA-7b matrices (4.5 bits per weight for q4f16_1 and Q4_K, 6.5625 for Q6_K)', () => {
    // 4096·4096/256 = 65,536 blocks × 144 bytes; 4096·4096/2 nibble bytes + 4096·4096/32 · 2 scale bytes
    expect(fileBytes('q4_k', 4096, 4096)).toBe(9_437_184);
    expect(fileBytes('q4f16_1', 4096, 4096)).toBe(8_388_608 + 1_048_576);
    // 11008·4096/256 = 176,128 blocks × 210 bytes
    expect(fileBytes('q6_k', 11008, 4096)).toBe(36_986_880);
    // on the GPU: Q4_K as is; Q6_K's 208-byte bodies plus 2 bytes of d per block (88,064 words)
    expect(byteSize([4096, 4096], 'q4_k')).toBe(9_437_184);
    expect(byteSize([4096, 4096], 'q4f16_1')).toBe(9_437_184);
    expect(byteSize([11008, 4096], 'q6_k')).toBe(176_128 * 208 + 4 * 88_064);
  });

  it('q4_k: the GGUF bytes are the GPU words (144-byte blocks are word-aligned)', () => {
    const bytes = quantizeQ4_K(randArray(Float32Array, 512, 3));
    const packed = packQ4_K(bytes, 1, 512);
    expect(new Uint8Array(packed.buffer)).toEqual(bytes);
    // block 1's first word: d | dmin << 16
    expect(packed[36]).toBe(
      (bytes[144]! | (bytes[145]! << 8) | (bytes[146]! << 16) | (bytes[147]! << 24)) >>> 0,
    );
  });

  it('q6_k: hand-built blocks: bodies first, then the d of each block two per u32, the last padded', () => {
    const nb = 3;
    const bytes = new Uint8Array(210 * nb);
    for (let b = 0; b < nb; b++) {
      for (let i = 0; i < 208; i++) bytes[210 * b + i] = (i * 7 + b * 31) & 0xff;
      const d = f32ToF16([0.5, -0.25, 2 ** -20][b]!);
      bytes[210 * b + 208] = d & 0xff;
      bytes[210 * b + 209] = d >> 8;
    }
    const packed = packQ6_K(bytes, 1, 256 * nb, 'hand');
    expect(packed.length).toBe((208 * nb) / 4 + 2);
    const p8 = new Uint8Array(packed.buffer);
    for (let b = 0; b < nb; b++)
      expect(p8.subarray(208 * b, 208 * (b + 1))).toEqual(bytes.subarray(210 * b, 210 * b + 208));
    expect(packed[156]).toBe((f32ToF16(0.5) | (f32ToF16(-0.25) << 16)) >>> 0); // blocks 0 and 1
    expect(packed[157]).toBe(f32ToF16(2 ** -20)); // block 2 (an f16 subnormal), high half zero
    expect(readPacked('q6_k', packed, 1, 256 * nb)).toEqual(dequantizeQ6_K(bytes, 256 * nb));
  });

  it('q4_k and q6_k from our quantizers: dequantizeWeight is dequantizeQ4_K / dequantizeQ6_K', () => {
    const w = randArray(Float32Array, 2 * 256, 5);
    const b4 = quantizeQ4_K(w);
    const b6 = quantizeQ6_K(w);
    expect(dequantizeWeight('q4_k', b4, 2, 256)).toEqual(dequantizeQ4_K(b4, 512));
    expect(dequantizeWeight('q6_k', b6, 2, 256)).toEqual(dequantizeQ6_K(b6, 512));
  });

  it('q4f16_1: MLC q_weight then q_scale (f16) bytes; back to an MlcQ4 exactly', () => {
    const [rows, cols] = [3, 64];
    const m = quantizeMlcQ4(randArray(Float32Array, rows * cols, 7), rows, cols, 'q4f16_1');
    const bytes = mlcQ4Bytes(m, 'wq');
    expect(bytes.length).toBe(4 * rows * 8 + 2 * rows * 2);
    expect(new Uint32Array(bytes.slice(0, 96).buffer)).toEqual(m.qWeight);
    const s0 = bytes[96]! | (bytes[97]! << 8);
    expect(f16ToF32(s0)).toBe(m.scale[0]);
    const back = mlcQ4FromBytes(bytes, rows, cols);
    expect(back).toEqual(m);
    expect(dequantizeWeight('q4f16_1', bytes, rows, cols)).toEqual(dequantizeMlcQ4(m));
    // 6 scales: three full words, no padding; the GPU words are the bytes
    expect(new Uint8Array(packQ4f16_1(bytes, rows, cols).buffer)).toEqual(bytes);
    // an odd number of scales gets a zero half
    const m1 = quantizeMlcQ4(randArray(Float32Array, 32, 8), 1, 32, 'q4f16_1');
    const p1 = packQ4f16_1(mlcQ4Bytes(m1), 1, 32);
    expect(p1.length).toBe(5);
    expect(p1[4]).toBe(f32ToF16(m1.scale[0]!));
  });

  it('q4f16_1: a hand-built group decodes to (q − 7)·scale', () => {
    // elements 0..7 = 0..7, 8..15 = 8..14, 0, then 16..31 = 7 (value 0)
    const qWeight = new Uint32Array([0x76543210, 0x0edcba98, 0x77777777, 0x77777777]);
    const m: MlcQ4 = { rows: 1, cols: 32, qWeight, scale: new Float32Array([0.5]) };
    const packed = packQ4f16_1(mlcQ4Bytes(m), 1, 32);
    const v = readPacked('q4f16_1', packed, 1, 32);
    expect(Array.from(v.subarray(0, 16))).toEqual([
      -3.5, -3, -2.5, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, -3.5,
    ]);
    expect(v.subarray(16).every((x) => x === 0)).toBe(true);
    expect(dequantizeWeight('q4f16_1', mlcQ4Bytes(m), 1, 32)).toEqual(v);
  });

  it("mlcQ4Bytes refuses q4f32_1's bf16 scales that are no f16 value, and padded groups", () => {
    const m: MlcQ4 = { rows: 1, cols: 32, qWeight: new Uint32Array(4), scale: new Float32Array([1e-30]) };
    expectError(
      () => mlcQ4Bytes(m, 'model.layers.0.mlp.down_proj'),
      'BAD_ARGUMENT',
      /down_proj.*not an f16.*mlcQ4ToQ4_0/,
    );
    const padded = quantizeMlcQ4(new Float32Array(40).fill(0.5), 1, 40, 'q4f16_1');
    expectError(() => mlcQ4Bytes(padded, 'lm_head'), 'SHAPE_MISMATCH', /lm_head.*multiple of 32/);
  });

  it('bad shapes and byte counts: SHAPE_MISMATCH naming the weight', () => {
    expectError(
      () => packQ4_K(new Uint8Array(144), 1, 96, 'blk.0.attn_q.weight'),
      'SHAPE_MISMATCH',
      /"blk\.0\.attn_q\.weight" \[1, 96\] is Q4_K.*multiple of 256/,
    );
    expectError(
      () => packQ6_K(new Uint8Array(200), 1, 256, 'output.weight'),
      'SHAPE_MISMATCH',
      /output\.weight.*200 bytes.*expected 210/,
    );
    expectError(() => packQ4f16_1(new Uint8Array(16), 1, 32, 'x'), 'SHAPE_MISMATCH', /16 bytes.*expected 18/);
    expectError(
      () => packWeight('q4_0', new Uint8Array(17), 1, 32, 'tok'),
      'SHAPE_MISMATCH',
      /"tok".*expected 18/,
    );
    expectError(
      () => quantizeWeight('q6_k', new Float32Array(128), 1, 128, 'w2'),
      'SHAPE_MISMATCH',
      /w2.*Q6_K.*256/,
    );
    expectError(
      () => quantizeWeight('q4_k', new Float32Array(255), 1, 256, 'w2'),
      'SHAPE_MISMATCH',
      /255 values/,
    );
  });

  it('the CPU backend dequantizes file bytes of every new dtype; f32 weights take values', () => {
    const be = new CpuBackend();
    for (const dtype of DTYPES) {
      const K = dtype === 'q4f16_1' ? 64 : 256;
      const bytes = quantizeWeight(dtype, randArray(Float32Array, 2 * K, 9), 2, K);
      const t = be.weight(dtype, [2, K], bytes, 'w');
      expect(t.dtype).toBe('f32');
      expect(t.data).toEqual(dequantizeWeight(dtype, bytes, 2, K));
    }
    expectError(
      () => be.weight('f32', [1, 32], new Uint8Array(128), 'norm'),
      'BAD_ARGUMENT',
      /norm.*Float32Array/,
    );
    expectError(
      () => be.weight('q6_k', [1, 256], new Uint8Array(10), 'out'),
      'SHAPE_MISMATCH',
      /"out".*expected 210/,
    );
  });
});
