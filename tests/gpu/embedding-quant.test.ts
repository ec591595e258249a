// The embedding gather from a quantized table (q8_0 / q4_0, dequantized in the kernel) against the
// CPU reference on the dequantized table; the f32 path is tests/gpu/embedding.test.ts.
import { describe, expect, it } from 'vitest';
import { GpuBackend } from '../../src/engine/backend/gpu.ts';
import { EngineError } from '../../src/engine/errors.ts';
import * as gpuOp from '../../src/engine/ops/embedding.ts';
import { dequantize, quantize, type QuantDType } from '../../src/engine/quant.ts';
import * as ref from '../../src/engine/ref/embedding.ts';
import { checkOp } from '../helpers/checkop.ts';
import { randArray, rng } from '../helpers/fd.ts';
import { testGpu } from '../helpers/gpu.ts';

function randTokens(N: number, V: number, seed: number): Uint32Array {
  const r = rng(seed);
  return Uint32Array.from({ length: N }, () => Math.floor(r() * V));
}

/** Gathers `tokens` from a (V, C) table quantized to `dtype`; GPU vs dequantize-then-gather. */
async function check(
  dtype: QuantDType,
  tokens: Uint32Array,
  C: number,
  V: number,
  table: Float32Array = randArray(Float32Array, V * C, V + C),
): Promise<Float32Array> {
  const gpu = await testGpu();
  const be = new GpuBackend(gpu);
  const N = tokens.length;
  const blocks = quantize(dtype, table);
  const expected = new Float32Array(N * C);
  ref.embeddingForward(expected, tokens, dequantize(dtype, blocks, V * C), N, C);
  return gpu.checked(async () => {
    const wte = be.weight(dtype, [V, C], blocks, 'wte');
    const ttok = gpu.fromData([N], tokens, 'tokens');
    const out = gpu.tensor([N, C], 'out');
    gpuOp.embeddingForward(gpu, out, ttok, wte, N, C);
    const got = await gpu.read(out);
    for (const t of [wte, ttok, out]) gpu.destroyBuffer(t.buffer);
    checkOp('embedding_forward', got, expected);
    // every gathered value is an exact product (int8 or int4 times an f16 scale): no rounding at all
    expect(Array.from(got)).toEqual(Array.from(expected));
    return got;
  });
}

describe('embedding from a quantized table, GPU vs dequantize-then-gather', () => {
  for (const dtype of ['q8_0', 'q4_0'] as const) {
    it(`${dtype}: one row of one block, V=1 C=32`, () => check(dtype, new Uint32Array([0]), 32, 1));
    it(`${dtype}: an odd number of blocks (last scale in the low half of its word), V=3 C=32`, () =>
      check(dtype, new Uint32Array([2, 0, 2, 1]), 32, 3));
    it(`${dtype}: repeated tokens, first and last rows, V=37 C=96`, () =>
      check(dtype, new Uint32Array([36, 0, 5, 36, 5, 17]), 96, 37));
    for (const [N, C, V] of [
      [40, 128, 50],
      [7, 4096, 9],
      [300, 64, 1000],
    ] as const) {
      it(`${dtype}: N=${N} C=${C} V=${V}`, () => check(dtype, randTokens(N, V, N + C + V), C, V));
    }
    it(`${dtype}: tiny weights (subnormal f16 scales) come back, not flushed to zero`, async () => {
      const V = 4,
        C = 64;
      // |x| ≤ 1e-4: d ≤ 1e-4/127 (q8_0) or 1e-4/8 (q4_0), below f16's smallest normal 2^-14
      const table = randArray(Float32Array, V * C, 9).map((v) => v * 1e-4);
      const blocks = quantize(dtype, table);
      const bb = dtype === 'q8_0' ? 34 : 18;
      for (let b = 0; b < blocks.length; b += bb) expect(blocks[b + 1]! & 0x7c).toBe(0); // exponent 0
      const got = await check(dtype, Uint32Array.from([3, 1, 0, 2]), C, V, table);
      expect(got.filter((v) => v !== 0).length).toBeGreaterThan(200);
    });
  }

  it('the row of a q8_0 table is the quantized row, element for element (hand-built block)', async () => {
    // one block: d = 0.5 (f16 0x3800), q = −16..15 → values −8 .. 7.5
    const block = new Uint8Array(34);
    block[0] = 0x00;
    block[1] = 0x38;
    for (let j = 0; j < 32; j++) block[2 + j] = (j - 16) & 0xff;
    const gpu = await testGpu();
    const be = new GpuBackend(gpu);
    const wte = be.weight('q8_0', [1, 32], block, 'wte');
    const ttok = gpu.fromData([2], new Uint32Array([0, 0]), 'tokens');
    const out = gpu.tensor([2, 32], 'out');
    gpuOp.embeddingForward(gpu, out, ttok, wte, 2, 32);
    const got = await gpu.read(out);
    for (const t of [wte, ttok, out]) gpu.destroyBuffer(t.buffer);
    const row = Array.from({ length: 32 }, (_, j) => (j - 16) * 0.5);
    expect(Array.from(got)).toEqual([...row, ...row]);
  });

  it('the row of a q4_0 table: byte j holds element j (low nibble) and j + 16 (high)', async () => {
    // d = −2 (f16 0xc000); byte j = (j) | (15 − j) << 4 → element j: (j − 8)·−2, j + 16: (7 − j)·−2
    const block = new Uint8Array(18);
    block[0] = 0x00;
    block[1] = 0xc0;
    for (let j = 0; j < 16; j++) block[2 + j] = j | ((15 - j) << 4);
    const gpu = await testGpu();
    const be = new GpuBackend(gpu);
    const wte = be.weight('q4_0', [1, 32], block, 'wte');
    const ttok = gpu.fromData([1], new Uint32Array([0]), 'tokens');
    const out = gpu.tensor([1, 32], 'out');
    gpuOp.embeddingForward(gpu, out, ttok, wte, 1, 32);
    const got = await gpu.read(out);
    for (const t of [wte, ttok, out]) gpu.destroyBuffer(t.buffer);
    const want = [
      ...Array.from({ length: 16 }, (_, j) => (j - 8) * -2),
      ...Array.from({ length: 16 }, (_, j) => (7 - j) * -2),
    ];
    expect(Array.from(got)).toEqual(want);
  });

  it('a quantized table has no backward; a row width not a multiple of 32 is refused', async () => {
    const gpu = await testGpu();
    const be = new GpuBackend(gpu);
    const wte = be.weight('q8_0', [2, 32], new Float32Array(64).fill(0.5), 'wte');
    const ttok = gpu.fromData([1], new Uint32Array([1]), 'tokens');
    const dout = gpu.tensor([1, 32], 'dout');
    try {
      expect(() => gpuOp.embeddingBackward(gpu, wte, dout, ttok, 1, 32, 2)).toThrow(
        expect.objectContaining({ code: 'BAD_ARGUMENT' }) as EngineError,
      );
      expect(() => gpuOp.embeddingForward(gpu, dout, ttok, wte, 1, 16)).toThrow(
        expect.objectContaining({ code: 'SHAPE_MISMATCH' }) as EngineError,
      );
    } finally {
      for (const t of [wte, ttok, dout]) gpu.destroyBuffer(t.buffer);
    }
  });
});
