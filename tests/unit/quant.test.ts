import { describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.ts';
import { byteSize } from '../../src/engine/gpu/tensor.ts';
import {
  dequantizeQ4_0,
  dequantizeQ8_0,
  f16ToF32,
  f32ToF16,
  packForGpu,
  quantizeQ4_0,
  quantizeQ8_0,
} from '../../src/engine/quant.ts';
import { randArray, rng } from '../helpers/fd.ts';

/** Independent f32 -> f16: the nearest of the 0x7bff finite magnitudes, ties to an even code. */
function f16Nearest(v: number): number {
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a >= 65520) return sign | 0x7c00; // halfway above 65504 rounds to even: infinity
  let lo = 0,
    hi = 0x7bff; // largest code with value ≤ a
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (f16ToF32(mid) <= a) lo = mid;
    else hi = mid - 1;
  }
  const dLo = a - f16ToF32(lo),
    dHi = f16ToF32(lo + 1) - a;
  return sign | (dLo < dHi || (dLo === dHi && (lo & 1) === 0) ? lo : lo + 1);
}

const scaleOf = (bytes: Uint8Array, block: number, size: number): number =>
  f16ToF32(bytes[block * size]! | (bytes[block * size + 1]! << 8));

describe('f16 <-> f32', () => {
  it('exact values, signed zero, infinities, NaN', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [0.5, 0x3800],
      [65504, 0x7bff],
      [2 ** -14, 0x0400],
      [2 ** -24, 0x0001],
      [1023 * 2 ** -24, 0x03ff],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
    ];
    for (const [v, h] of cases) {
      expect(f32ToF16(v)).toBe(h);
      expect(Object.is(f16ToF32(h), v)).toBe(true);
    }
    const nan = f32ToF16(NaN);
    expect(nan & 0x7c00).toBe(0x7c00);
    expect(nan & 0x3ff).not.toBe(0);
    expect(f16ToF32(0x7e00)).toBeNaN();
  });

  it('rounds to nearest, ties to even (normal, subnormal, overflow)', () => {
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // tie, even stays down
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie, odd goes up
    expect(f32ToF16(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // above the tie
    expect(f32ToF16(2 ** -25)).toBe(0x0000); // half the smallest subnormal: tie to 0
    expect(f32ToF16(2 ** -25 * (1 + 2 ** -20))).toBe(0x0001);
    expect(f32ToF16(3 * 2 ** -25)).toBe(0x0002); // tie between 1 and 2 ulps: even
    expect(f32ToF16(-5 * 2 ** -25)).toBe(0x8002);
    expect(f32ToF16(2 ** -14 - 2 ** -26)).toBe(0x0400); // rounds up into the normals
    expect(f32ToF16(1e-10)).toBe(0x0000);
    expect(f32ToF16(65519.99)).toBe(0x7bff);
    expect(f32ToF16(65520)).toBe(0x7c00);
    expect(f32ToF16(1e6)).toBe(0x7c00);
    expect(f32ToF16(2047.5)).toBe(f16Nearest(2047.5)); // carry from the mantissa into the exponent
  });

  it('round-trips every finite f16 and matches an independent nearest search on random f32', () => {
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00 && h & 0x3ff) continue; // NaN
      expect(f32ToF16(f16ToF32(h))).toBe(h);
    }
    const r = rng(42);
    const box = new Uint32Array(1),
      f = new Float32Array(box.buffer);
    for (let i = 0; i < 20000; i++) {
      // random sign and mantissa, exponents from far below the subnormals to past the overflow
      box[0] = ((r() * 2) << 31) | ((96 + Math.floor(r() * 50)) << 23) | Math.floor(r() * 0x800000);
      const v = f[0]!;
      if (f32ToF16(v) !== f16Nearest(v))
        throw new Error(`f32ToF16(${v}) = ${f32ToF16(v)}, expected ${f16Nearest(v)}`);
    }
  });
});

describe('q8_0', () => {
  it('block bytes: f16 d = amax/127, then round(x/d) with halves away from zero', () => {
    const x = new Float32Array(32);
    x[0] = 127;
    x[1] = 2.5;
    x[2] = -2.5;
    x[3] = -127;
    x[4] = 0.49;
    x[5] = -0.5;
    const b = quantizeQ8_0(x);
    expect(b.length).toBe(34);
    expect(b[0]! | (b[1]! << 8)).toBe(0x3c00); // d = 1
    const q = new Int8Array(b.buffer, 2, 32);
    expect([...q.subarray(0, 7)]).toEqual([127, 3, -3, -127, 0, -1, 0]);
  });

  it('a zero block has d = 0 and dequantizes to zeros', () => {
    const b = quantizeQ8_0(new Float32Array(64));
    expect(dequantizeQ8_0(b, 64)).toEqual(new Float32Array(64));
  });

  it('dequantized error ≤ d/2 (+ the f16 rounding of d) per block', () => {
    for (const [scale, seed] of [
      [1, 1],
      [1e-3, 2],
      [300, 3],
      [2 ** -12, 4],
    ] as const) {
      const x = randArray(Float32Array, 32 * 50, seed, -scale, scale);
      const b = quantizeQ8_0(x);
      const y = dequantizeQ8_0(b, x.length);
      for (let blk = 0; blk < 50; blk++) {
        let amax = 0;
        for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[blk * 32 + j]!));
        const d = Math.fround(amax / 127),
          d16 = scaleOf(b, blk, 34);
        const bound = (d / 2) * (1 + 1e-6) + 127 * Math.abs(d - d16);
        for (let j = 0; j < 32; j++)
          expect(Math.abs(x[blk * 32 + j]! - y[blk * 32 + j]!)).toBeLessThanOrEqual(bound);
      }
    }
  });
});

describe('q4_0', () => {
  it('block bytes: d = max/−8, q = min(15, trunc(x/d + 8.5)), byte j = q[j] | q[j+16] << 4', () => {
    const x = new Float32Array(32).map((_, j) => j - 16); // max |x| is x[0] = −16: d = 2
    const b = quantizeQ4_0(x);
    expect(b.length).toBe(18);
    expect(b[0]! | (b[1]! << 8)).toBe(f32ToF16(2));
    // q = trunc((j − 16)/2 + 8.5) = trunc(j/2 + 0.5): j = 0 → 0, j = 1 → 1, j = 16 → 8, j = 31 → 15 (16 clamped)
    const q = (j: number): number => Math.min(15, Math.trunc(j / 2 + 0.5));
    for (let j = 0; j < 16; j++) expect(b[2 + j]).toBe(q(j) | (q(j + 16) << 4));
    const y = dequantizeQ4_0(b, 32);
    expect(y[0]).toBe(-16);
    expect(y[31]).toBe(14); // clamped: 15 would need q = 16
  });

  it('the extreme value is exact up to f16(d); error ≤ d/2 except clamped values (x/d > 7.5: ≤ d)', () => {
    for (const [scale, seed] of [
      [1, 5],
      [1e-3, 6],
      [300, 7],
    ] as const) {
      const x = randArray(Float32Array, 32 * 50, seed, -scale, scale);
      const b = quantizeQ4_0(x);
      const y = dequantizeQ4_0(b, x.length);
      for (let blk = 0; blk < 50; blk++) {
        let amax = 0,
          max = 0;
        for (let j = 0; j < 32; j++) {
          const v = x[blk * 32 + j]!;
          if (Math.abs(v) > amax) [amax, max] = [Math.abs(v), v];
        }
        const d = Math.fround(max / -8),
          d16 = scaleOf(b, blk, 18);
        const f16err = 8 * Math.abs(d - d16);
        for (let j = 0; j < 32; j++) {
          const v = x[blk * 32 + j]!;
          const err = Math.abs(v - y[blk * 32 + j]!);
          const clamped = v / d > 7.5;
          expect(err).toBeLessThanOrEqual((clamped ? Math.abs(d) : Math.abs(d) / 2) * (1 + 1e-6) + f16err);
          if (v === max) expect(y[blk * 32 + j]).toBe(-8 * d16);
        }
      }
    }
  });
});

describe('packForGpu', () => {
  it('q8_0: quants row-major, then f16 scales two per u32, low half first', () => {
    const rows = 1,
      K = 96; // 3 blocks: the last scale word holds one scale
    const x = randArray(Float32Array, rows * K, 11);
    const gguf = quantizeQ8_0(x);
    const p = packForGpu('q8_0', gguf, rows, K);
    expect(p.byteLength).toBe(byteSize([rows, K], 'q8_0'));
    const p8 = new Uint8Array(p.buffer);
    for (let blk = 0; blk < 3; blk++) {
      for (let j = 0; j < 32; j++) expect(p8[blk * 32 + j]).toBe(gguf[blk * 34 + 2 + j]);
    }
    const s = p.subarray(96 / 4);
    expect(s.length).toBe(2);
    expect(s[0]).toBe((gguf[0]! | (gguf[1]! << 8) | ((gguf[34]! | (gguf[35]! << 8)) << 16)) >>> 0);
    expect(s[1]).toBe(gguf[68]! | (gguf[69]! << 8));
  });

  it('q4_0: the 16 quant bytes of each block in GGUF order, then the scales', () => {
    const rows = 2,
      K = 64; // 4 blocks
    const x = randArray(Float32Array, rows * K, 12);
    const gguf = quantizeQ4_0(x);
    const p = packForGpu('q4_0', gguf, rows, K);
    expect(p.byteLength).toBe(byteSize([rows, K], 'q4_0'));
    const p8 = new Uint8Array(p.buffer);
    for (let blk = 0; blk < 4; blk++) {
      for (let j = 0; j < 16; j++) expect(p8[blk * 16 + j]).toBe(gguf[blk * 18 + 2 + j]);
      const word = p[16 + (blk >> 1)]!; // scales start after 128 values / 2 = 64 bytes = 16 words
      expect((word >>> (16 * (blk & 1))) & 0xffff).toBe(gguf[blk * 18]! | (gguf[blk * 18 + 1]! << 8));
    }
  });

  it('refuses K not a multiple of 32 and a byte count that does not fit the shape', () => {
    const code = (f: () => unknown): string | undefined => {
      try {
        f();
      } catch (e) {
        return e instanceof EngineError ? e.code : 'other';
      }
      return undefined;
    };
    expect(code(() => packForGpu('q8_0', new Uint8Array(34), 1, 48))).toBe('SHAPE_MISMATCH');
    expect(code(() => packForGpu('q4_0', new Uint8Array(17), 1, 32))).toBe('SHAPE_MISMATCH');
    expect(code(() => quantizeQ4_0(new Float32Array(40)))).toBe('SHAPE_MISMATCH');
  });
});
