import { describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.ts';
import { f16ToF32 } from '../../src/engine/quant.ts';
import {
  dequantizeQ4_K,
  dequantizeQ6_K,
  Q4_K_BLOCK_BYTES,
  Q6_K_BLOCK_BYTES,
  QK_K,
  quantizeQ4_K,
  quantizeQ6_K,
} from '../../src/engine/quant-k.ts';
import { rng } from '../helpers/fd.ts';

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

// ---------------------------------------------------------------------------------------------
// Q4_K: hand-built blocks. Layout (ggml block_q4_K): f16 d, f16 dmin, 12 scale bytes, 128 quant bytes.

const SC = [1, 2, 3, 63, 17, 40, 33, 5]; // sub-block scales (6 bits)
const MN = [0, 7, 63, 1, 16, 48, 2, 60]; // sub-block mins (6 bits)
const Q4K_SCALE_BYTES = [
  // bytes 0–3: low 6 bits sc[j]; top 2 bits sc[j+4] >> 4
  0x41, // 1 | (17 >> 4) << 6
  0x82, // 2 | (40 >> 4) << 6
  0x83, // 3 | (33 >> 4) << 6
  0x3f, // 63 | (5 >> 4) << 6
  // bytes 4–7: low 6 bits m[j]; top 2 bits m[j+4] >> 4
  0x40, // 0 | (16 >> 4) << 6
  0xc7, // 7 | (48 >> 4) << 6
  0x3f, // 63 | (2 >> 4) << 6
  0xc1, // 1 | (60 >> 4) << 6
  // bytes 8–11: low nibble sc[j+4] & 15, high nibble m[j+4] & 15
  0x01, // 17 & 15 | (16 & 15) << 4
  0x08, // 40 & 15 | (48 & 15) << 4
  0x21, // 33 & 15 | (2 & 15) << 4
  0xc5, // 5 & 15 | (60 & 15) << 4
];

function q4kBlock(dBits: number, dminBits: number, qs: (i: number) => number): Uint8Array {
  const b = new Uint8Array(Q4_K_BLOCK_BYTES);
  b[0] = dBits & 0xff;
  b[1] = dBits >> 8;
  b[2] = dminBits & 0xff;
  b[3] = dminBits >> 8;
  b.set(Q4K_SCALE_BYTES, 4);
  for (let i = 0; i < 128; i++) b[16 + i] = qs(i);
  return b;
}

/** Value e of a Q4_K block by the format's definition, one float32 rounding at the end. */
function q4kExpected(d: number, dmin: number, qs: (i: number) => number, e: number): number {
  const group = e >> 6; // 64 values share 32 quant bytes
  const high = (e >> 5) & 1; // the second 32 of a group sit in the high nibbles
  const byte = qs(32 * group + (e & 31));
  const q = high ? byte >> 4 : byte & 15;
  const j = 2 * group + high;
  return Math.fround(d * SC[j]! * q - dmin * MN[j]!);
}

describe('Q4_K dequantization (hand-built blocks)', () => {
  it('reads values at hand-computed positions', () => {
    const qs = (i: number) => (i === 0 ? 0x9f : i === 127 ? 0x4e : 0);
    const out = dequantizeQ4_K(q4kBlock(0x3800, 0x3400, qs), QK_K); // d = 0.5, dmin = 0.25
    expect(out[0]).toBe(7.5); // q 15, j 0: 0.5·1·15 − 0.25·0
    expect(out[32]).toBe(7.25); // q 9, j 1: 0.5·2·9 − 0.25·7
    expect(out[223]).toBe(230.5); // q 14, j 6: 0.5·33·14 − 0.25·2
    expect(out[255]).toBe(-5); // q 4, j 7: 0.5·5·4 − 0.25·60
    expect(out[1]).toBe(0); // q 0, j 0
    expect(out[40]).toBe(-1.75); // q 0, j 1
    expect(out[64]).toBe(-15.75); // q 0, j 2: −0.25·63
    expect(out[150]).toBe(-4); // q 0, j 4 (values 128–159): −0.25·16
    expect(out[170]).toBe(-12); // q 0, j 5 (values 160–191): −0.25·48
  });

  it('matches the definition on every value of two blocks (exact and rounded scales)', () => {
    const qsA = (i: number) => (i * 7 + 3) & 0xff;
    const qsB = (i: number) => (i * 29 + 101) & 0xff;
    // block B: d and dmin with full f16 mantissas, so d·sc·q − dmin·m rounds in float32
    const dB = 0x3555;
    const dminB = 0x2e66;
    const bytes = new Uint8Array(2 * Q4_K_BLOCK_BYTES);
    bytes.set(q4kBlock(0x3800, 0x3400, qsA), 0);
    bytes.set(q4kBlock(dB, dminB, qsB), Q4_K_BLOCK_BYTES);
    const out = dequantizeQ4_K(bytes, 2 * QK_K);
    for (let e = 0; e < QK_K; e++) {
      expect(out[e]).toBe(q4kExpected(0.5, 0.25, qsA, e));
      expect(out[QK_K + e]).toBe(q4kExpected(f16ToF32(dB), f16ToF32(dminB), qsB, e));
    }
    expect(new Set(out).size).toBeGreaterThan(200); // the patterns exercise many (q, j) pairs
  });

  it('rejects a byte count that does not match', () => {
    expectError(
      () => dequantizeQ4_K(new Uint8Array(143), QK_K),
      'SHAPE_MISMATCH',
      /143 bytes for 256 values/,
    );
    expectError(() => dequantizeQ4_K(new Uint8Array(144), 100), 'SHAPE_MISMATCH', /not a multiple of 256/);
  });
});

// ---------------------------------------------------------------------------------------------
// Q6_K: hand-built blocks. Layout (ggml block_q6_K): 128 ql, 64 qh, 16 int8 scales, f16 d.

function q6kBlock(dBits: number, scales: number[], ql: (i: number) => number, qh: (i: number) => number) {
  const b = new Uint8Array(Q6_K_BLOCK_BYTES);
  for (let i = 0; i < 128; i++) b[i] = ql(i);
  for (let i = 0; i < 64; i++) b[128 + i] = qh(i);
  scales.forEach((s, j) => (b[192 + j] = s & 0xff)); // int8 two's complement
  b[208] = dBits & 0xff;
  b[209] = dBits >> 8;
  return b;
}

/** Value e of a Q6_K block by the format's definition. */
function q6kExpected(
  d: number,
  scales: number[],
  ql: (i: number) => number,
  qh: (i: number) => number,
  e: number,
): number {
  const half = e >> 7; // 128 values per 64 ql bytes and 32 qh bytes
  const r = e & 127;
  const quarter = r >> 5; // 0: ql low, 1: ql[+32] low, 2: ql high, 3: ql[+32] high
  const l = r & 31;
  const lowByte = ql(64 * half + l + (quarter & 1 ? 32 : 0));
  const low4 = quarter >= 2 ? lowByte >> 4 : lowByte & 15;
  const high2 = (qh(32 * half + l) >> (2 * quarter)) & 3;
  return Math.fround(d * scales[e >> 4]! * ((low4 | (high2 << 4)) - 32));
}

describe('Q6_K dequantization (hand-built blocks)', () => {
  it('reads values at hand-computed positions', () => {
    const ones = Array<number>(16).fill(1);
    const ql = (i: number) => (i === 0 ? 0x5a : i === 32 ? 0xc3 : 0);
    const qh = (i: number) => (i === 0 ? 0b11_10_01_00 : 0);
    const out = dequantizeQ6_K(q6kBlock(0x3c00, ones, ql, qh), QK_K); // d = 1
    expect(out[0]).toBe(-22); // low 0xA, high bits 00: 10 − 32
    expect(out[32]).toBe(-13); // low 0x3, high bits 01: 19 − 32
    expect(out[64]).toBe(5); // high nibble 0x5, high bits 10: 37 − 32
    expect(out[96]).toBe(28); // high nibble 0xC, high bits 11: 60 − 32
    expect(out[1]).toBe(-32); // q 0
    expect(out[200]).toBe(-32);
  });

  it('matches the definition on every value of two blocks, negative scales included', () => {
    const sA = [1, -1, 2, -2, 127, -128, 3, 5, 7, -7, 10, 20, -30, 40, 50, -60];
    const sB = [-128, 127, 0, 1, 99, -99, 64, -64, 33, -33, 12, -12, 5, -5, 2, -2];
    const qlA = (i: number) => (i * 37 + 11) & 0xff;
    const qhA = (i: number) => (i * 91 + 3) & 0xff;
    const qlB = (i: number) => (i * 53 + 200) & 0xff;
    const qhB = (i: number) => (i * 17 + 77) & 0xff;
    const dB = 0x1abc; // a small f16 with a full mantissa
    const bytes = new Uint8Array(2 * Q6_K_BLOCK_BYTES);
    bytes.set(q6kBlock(0x3000, sA, qlA, qhA), 0); // d = 0.125
    bytes.set(q6kBlock(dB, sB, qlB, qhB), Q6_K_BLOCK_BYTES);
    const out = dequantizeQ6_K(bytes, 2 * QK_K);
    for (let e = 0; e < QK_K; e++) {
      expect(out[e]).toBe(q6kExpected(0.125, sA, qlA, qhA, e));
      expect(out[QK_K + e]).toBe(q6kExpected(f16ToF32(dB), sB, qlB, qhB, e));
    }
  });

  it('rejects a byte count that does not match', () => {
    expectError(
      () => dequantizeQ6_K(new Uint8Array(211), QK_K),
      'SHAPE_MISMATCH',
      /211 bytes for 256 values/,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// The quantizers: valid blocks, error within a bound derived from the input alone.
//
// f16Up(v), the smallest f16 ≥ v, is < v·(1 + 2^-10) + 2^-24 (f16 spacing: 2^-10 relative for
// normal values, 2^-24 absolute for subnormals).
//
// Q4_K, sub-block j of 32 (lo_j = min(0, min x), hi_j = max x, M = max_j −lo_j):
//   dmin < M/63·(1 + 2^-10) + 2^-24; the offset dmin·ceil(−lo_j/dmin) < −lo_j + dmin;
//   step need_j = (hi_j + offset_j)/15 < (hi_j − lo_j + dmin)/15; d < max_j need_j/63·(1 + 2^-10) + 2^-24;
//   step_j = d·ceil(need_j/d) < need_j + d; x lies within the 16 levels, so
//   |x − x̂| ≤ step_j/2 < (hi_j − lo_j + dmin)/30 + d/2,  plus float32 rounding of x̂ (≤ 2^-24·|x̂|).
// Q6_K, sub-block j of 16 (a_j = max|x|, A = max_j a_j):
//   d < A/(31·127)·(1 + 2^-10) + 2^-24; step_j = d·ceil(a_j/31/d) < a_j/31 + d; |x| ≤ 31·step_j, so
//   |x − x̂| ≤ step_j/2 < a_j/62 + d/2 (x̂ = d·sc·q is exact in float32).

const UP = 1 + 2 ** -10;
const TINY = 2 ** -24;

function q4kBound(w: Float32Array): Float64Array {
  const bound = new Float64Array(w.length);
  for (let b = 0; b < w.length / QK_K; b++) {
    const lo: number[] = [];
    const hi: number[] = [];
    for (let j = 0; j < 8; j++) {
      const sub = Array.from(w.subarray(b * QK_K + 32 * j, b * QK_K + 32 * j + 32));
      lo.push(Math.min(0, ...sub));
      hi.push(Math.max(...sub));
    }
    const dmin = (Math.max(...lo.map((v) => -v)) / 63) * UP + TINY;
    const needMax = Math.max(...lo.map((l, j) => (hi[j]! - l + dmin) / 15));
    const d = (needMax / 63) * UP + TINY;
    for (let i = 0; i < QK_K; i++) {
      const j = i >> 5;
      const x = Math.abs(w[b * QK_K + i]!);
      const e = (hi[j]! - lo[j]! + dmin) / 30 + d / 2;
      bound[b * QK_K + i] = e + 2 ** -24 * (x + 2 * e);
    }
  }
  return bound;
}

function q6kBound(w: Float32Array): Float64Array {
  const bound = new Float64Array(w.length);
  for (let b = 0; b < w.length / QK_K; b++) {
    const a: number[] = [];
    for (let j = 0; j < 16; j++) {
      a.push(Math.max(...Array.from(w.subarray(b * QK_K + 16 * j, b * QK_K + 16 * j + 16), Math.abs)));
    }
    const d = (Math.max(...a) / (31 * 127)) * UP + TINY;
    for (let i = 0; i < QK_K; i++) bound[b * QK_K + i] = a[i >> 4]! / 62 + d / 2;
  }
  return bound;
}

/** Inputs that stress different parts of the format. */
function cases(): [string, Float32Array][] {
  const r = rng(7);
  const gauss = () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
  const make = (n: number, f: (i: number) => number) => Float32Array.from({ length: n }, (_, i) => f(i));
  return [
    ['uniform [−1, 1)', make(4 * QK_K, () => 2 * r() - 1)],
    ['gaussian ×0.02 (LLaMA-like)', make(8 * QK_K, () => 0.02 * gauss())],
    ['all positive', make(2 * QK_K, () => 3 + r())],
    ['all negative', make(2 * QK_K, () => -3 - r())],
    ['constant', make(QK_K, () => 0.7)],
    ['zeros', make(QK_K, () => 0)],
    [
      'one large sub-block among small ones',
      make(2 * QK_K, (i) => ((i >> 5) % 8 === 3 ? 100 : 0.01) * gauss()),
    ],
    ['tiny values (subnormal f16 scales)', make(QK_K, () => 1e-7 * (2 * r() - 1))],
    ['large values', make(QK_K, () => 5000 * gauss())],
    ['sparse outliers', make(2 * QK_K, (i) => (i % 97 === 0 ? 8 : 0.05 * gauss()))],
    // sub-block 0 sets dmin ≈ 1/63; the others sit at −1.4·dmin: their offset must round up, not down
    ['narrow negative sub-blocks beside a wide one', make(QK_K, (i) => (i < 32 ? -r() : -1.4 / 63))],
  ];
}

function maxRatio(w: Float32Array, back: Float32Array, bound: Float64Array): number {
  let worst = 0;
  for (let i = 0; i < w.length; i++) {
    const err = Math.abs(w[i]! - back[i]!);
    if (bound[i] === 0) expect(err).toBe(0);
    else worst = Math.max(worst, err / bound[i]!);
  }
  return worst;
}

describe('quantizeQ4_K', () => {
  it.each(cases())('%s: every value within the bound', (_, w) => {
    const bytes = quantizeQ4_K(w);
    expect(bytes.length).toBe((w.length / QK_K) * Q4_K_BLOCK_BYTES);
    for (let b = 0; b < w.length / QK_K; b++) {
      const d = f16ToF32(bytes[b * 144]! | (bytes[b * 144 + 1]! << 8));
      const dmin = f16ToF32(bytes[b * 144 + 2]! | (bytes[b * 144 + 3]! << 8));
      expect(Number.isFinite(d) && d >= 0 && Number.isFinite(dmin) && dmin >= 0).toBe(true);
    }
    const back = dequantizeQ4_K(bytes, w.length);
    expect(maxRatio(w, back, q4kBound(w))).toBeLessThanOrEqual(1);
  });

  // 16 levels over a 32-sample gaussian's range (≈ 4.3σ): step ≈ 0.28σ, uniform rounding error
  // step/√12 ≈ 0.08σ; scale rounding (ceil to 6 bits) adds a little.
  it('is about as good as 4 bits allow on LLaMA-like weights (RMS error < 0.1 of the RMS)', () => {
    const w = cases()[1]![1];
    const back = dequantizeQ4_K(quantizeQ4_K(w), w.length);
    let se = 0;
    let ss = 0;
    for (let i = 0; i < w.length; i++) {
      se += (w[i]! - back[i]!) ** 2;
      ss += w[i]! ** 2;
    }
    expect(Math.sqrt(se / ss)).toBeLessThan(0.1);
  });

  it('rejects bad input', () => {
    expectError(
      () => quantizeQ4_K(new Float32Array(100)),
      'SHAPE_MISMATCH',
      /100 values is not a multiple of 256/,
    );
    const nan = new Float32Array(QK_K);
    nan[5] = NaN;
    expectError(() => quantizeQ4_K(nan), 'BAD_ARGUMENT', /value 5 is NaN/);
    expectError(
      () => quantizeQ4_K(new Float32Array(QK_K).fill(1e9)),
      'BAD_ARGUMENT',
      /does not fit in an f16/,
    );
  });
});

describe('quantizeQ6_K', () => {
  it.each(cases())('%s: every value within the bound', (_, w) => {
    const bytes = quantizeQ6_K(w);
    expect(bytes.length).toBe((w.length / QK_K) * Q6_K_BLOCK_BYTES);
    const back = dequantizeQ6_K(bytes, w.length);
    expect(maxRatio(w, back, q6kBound(w))).toBeLessThanOrEqual(1);
  });

  // symmetric 63 levels over ±max|x| of 16 gaussian samples (≈ 2.1σ): step ≈ 0.068σ, error ≈ 0.02σ.
  it('is about as good as 6 bits allow on LLaMA-like weights (RMS error < 0.025 of the RMS)', () => {
    const w = cases()[1]![1];
    const back = dequantizeQ6_K(quantizeQ6_K(w), w.length);
    let se = 0;
    let ss = 0;
    for (let i = 0; i < w.length; i++) {
      se += (w[i]! - back[i]!) ** 2;
      ss += w[i]! ** 2;
    }
    expect(Math.sqrt(se / ss)).toBeLessThan(0.025);
  });

  it('rejects bad input', () => {
    expectError(
      () => quantizeQ6_K(new Float32Array(300)),
      'SHAPE_MISMATCH',
      /300 values is not a multiple of 256/,
    );
    const inf = new Float32Array(QK_K);
    inf[0] = Infinity;
    expectError(() => quantizeQ6_K(inf), 'BAD_ARGUMENT', /value 0 is Infinity/);
  });
});
