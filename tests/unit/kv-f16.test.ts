// The f16 KV cache on the CPU (src/engine/kvcache.ts, ref/attention.ts): the encoder's bits (ties,
// saturation, the subnormal range, NaN) against hand-worked values and against quant.ts's
// independent f32ToF16 over every normal f16; the reference decode on an f16 cache equals the f32
// decode on the f16-rounded values; LlamaRunner's f16 cache is half the bytes, as planMemory counts.
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../../src/engine/backend/cpu.ts';
import { EngineError } from '../../src/engine/errors.ts';
import { LlamaRunner } from '../../src/engine/infer/runner.ts';
import {
  f16Table,
  kvF16Bits,
  kvTypeOf,
  packKvF16,
  roundKvF16,
  unpackKvF16,
  type KvType,
} from '../../src/engine/kvcache.ts';
import { kvDim, type LlamaConfig } from '../../src/engine/model/config.ts';
import { loadLlama } from '../../src/engine/model/llama.ts';
import { randomLlamaWeights } from '../../src/engine/model/random.ts';
import { planMemory } from '../../src/engine/plan.ts';
import { f16ToF32, f32ToF16 } from '../../src/engine/quant.ts';
import * as ref from '../../src/engine/ref/attention.ts';
import { randArray } from '../helpers/fd.ts';
import { CountingCpu } from '../helpers/backends.ts';

const hex = (h: number) => '0x' + h.toString(16).padStart(4, '0');

describe('kvF16Bits', () => {
  it('hand-worked values: exact, ties to even, carries, saturation, flush, NaN', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [0.5, 0x3800],
      [65504, 0x7bff],
      [65519, 0x7bff], // below the midpoint to 65536
      [65520, 0x7bff], // rounds to ∞ in IEEE: saturates
      [-1e6, 0xfbff],
      [Infinity, 0x7bff],
      [-Infinity, 0xfbff],
      [NaN, 0x7e00],
      [1 + 2 ** -11, 0x3c00], // tie between 1 and 1 + 2^-10: the even one
      [1 + 3 * 2 ** -11, 0x3c02], // tie between 1 + 2^-10 and 1 + 2^-9: the even one
      [1 + 2 ** -11 + 2 ** -23, 0x3c01], // just past the tie
      [2 - 2 ** -12, 0x4000], // the mantissa carries into the exponent
      [2049, 0x6800], // tie between 2048 and 2050: 2048
      [2051, 0x6802], // tie between 2050 and 2052: 2052
      [2 ** -14, 0x0400], // the smallest normal f16
      [-(2 ** -14), 0x8400],
      [2 ** -14 * (1 - 2 ** -24), 0x0000], // just below: f16 subnormal range → 0
      [-(2 ** -15), 0x8000],
      [2 ** -24, 0x0000],
      [1e-40, 0x0000], // an f32 subnormal
      [0.1, 0x2e66],
    ];
    for (const [x, bits] of cases) expect(hex(kvF16Bits(x)), `kvF16Bits(${x})`).toBe(hex(bits));
  });

  it("equals quant.ts's f32ToF16 on every normal f16, the ties between them and their neighbours", () => {
    const f = new Float32Array(1),
      u = new Uint32Array(f.buffer);
    const near = (x: number, ulps: number) => {
      f[0] = x;
      u[0] = u[0]! + ulps;
      return f[0];
    };
    let checked = 0;
    for (const sign of [0, 0x8000]) {
      for (let h = 0x0400; h < 0x7bff; h++) {
        const lo = f16ToF32(sign | h),
          hi = f16ToF32(sign | (h + 1));
        const mid = (lo + hi) / 2; // exact in f32
        for (const x of [lo, mid, near(mid, 1), near(mid, -1), near(lo, 1)]) {
          if (kvF16Bits(x) !== f32ToF16(x)) expect(hex(kvF16Bits(x)), `x = ${x}`).toBe(hex(f32ToF16(x)));
          checked++;
        }
      }
    }
    expect(checked).toBe(2 * (0x7bff - 0x0400) * 5);
  });

  it('stores a normal f16 or a signed zero only: every stored value is exact through f16Table', () => {
    const t = f16Table();
    const x = randArray(Float32Array, 4096, 3, -1, 1).map((v, i) => v * 10 ** ((i % 12) - 7));
    for (const v of x) {
      const h = kvF16Bits(v);
      expect((h & 0x7c00) !== 0 || (h & 0x3ff) === 0).toBe(true); // no subnormal pattern
      expect(t[h]).toBe(f16ToF32(h));
    }
  });

  it('packKvF16 / unpackKvF16: low half first, and the round trip is roundKvF16', () => {
    expect(Array.from(packKvF16([1, -2]))).toEqual([0xc0003c00]);
    const x = randArray(Float32Array, 64, 5, -3, 3);
    expect(Array.from(unpackKvF16(packKvF16(x)))).toEqual(Array.from(roundKvF16(x)));
    expect(() => packKvF16([1, 2, 3])).toThrow(EngineError);
  });

  it('kvTypeOf: f32, u32 words with an even head size, and BAD_ARGUMENT otherwise', () => {
    expect(kvTypeOf('op', 'f32', 'f32', 7)).toBe('f32');
    expect(kvTypeOf('op', 'u32', 'u32', 8)).toBe('f16');
    for (const [k, v, hs] of [
      ['u32', 'u32', 7],
      ['u32', 'f32', 8],
      ['q8_0', 'q8_0', 8],
    ] as const) {
      expect(() => kvTypeOf('op', k, v, hs)).toThrow(expect.objectContaining({ code: 'BAD_ARGUMENT' }));
    }
  });
});

describe('reference decode on an f16 cache', () => {
  const cases = [
    // rows [slot, pos], S, maxT, NH, NKV, HS
    [[[0, 0]], 1, 1, 1, 1, 2],
    [
      [
        [0, 9],
        [1, 3],
        [0, 4],
      ],
      2,
      10,
      4,
      2,
      8,
    ],
    [
      [
        [2, 30],
        [0, 17],
      ],
      3,
      31,
      8,
      1,
      16,
    ],
  ] as const;
  for (const [rows, S, maxT, NH, NKV, HS] of cases) {
    it(`equals the f32 decode on the rounded values: rows ${rows.map((r) => r.join('@')).join(' ')} NH=${NH} NKV=${NKV} HS=${HS}`, () => {
      const R = rows.length,
        n = S * maxT * NKV * HS;
      const info = new Uint32Array(rows.flat());
      const init = randArray(Float32Array, n, 1, -2, 2);
      const k = randArray(Float32Array, R * NKV * HS, 2, -2, 2),
        v = randArray(Float32Array, R * NKV * HS, 3, -2, 2);
      const q = randArray(Float32Array, R * NH * HS, 4, -2, 2);
      // f16: packed words; f32: the same values rounded, written through the f32 path
      const kw = packKvF16(init),
        vw = packKvF16(init.map((x) => -x));
      const kf = roundKvF16(init),
        vf = roundKvF16(init.map((x) => -x));
      ref.kvCacheWrite(kw, vw, k, v, info, R, NKV, HS, maxT);
      ref.kvCacheWrite(kf, vf, roundKvF16(k), roundKvF16(v), info, R, NKV, HS, maxT);
      expect(Array.from(unpackKvF16(kw))).toEqual(Array.from(kf));
      expect(Array.from(unpackKvF16(vw))).toEqual(Array.from(vf));
      const o16 = new Float32Array(R * NH * HS),
        o32 = new Float32Array(R * NH * HS);
      ref.attentionDecode(o16, q, kw, vw, info, R, NH, NKV, HS, maxT);
      ref.attentionDecode(o32, q, kf, vf, info, R, NH, NKV, HS, maxT);
      expect(Array.from(o16)).toEqual(Array.from(o32));
      // and differs from the unrounded f32 decode by f16 rounding only
      const kx = new Float32Array(init),
        vx = init.map((x) => -x);
      ref.kvCacheWrite(kx, vx, k, v, info, R, NKV, HS, maxT);
      const exact = new Float32Array(R * NH * HS);
      ref.attentionDecode(exact, q, kx, vx, info, R, NH, NKV, HS, maxT);
      const err = Math.max(...exact.map((x, i) => Math.abs(x - o16[i]!)));
      expect(err).toBeGreaterThan(0);
      expect(err).toBeLessThan(5e-3);
    });
  }

  it('refuses an odd head size and a k/v type mismatch', () => {
    const info = new Uint32Array([0, 0]);
    const w = new Uint32Array(3),
      x = new Float32Array(6);
    expect(() => ref.kvCacheWrite(w, w, x, x, info, 1, 2, 3, 1)).toThrow(
      expect.objectContaining({ code: 'BAD_ARGUMENT', message: expect.stringMatching(/even head size/) }),
    );
    expect(() => ref.attentionDecode(x, x, x, w, info, 1, 1, 1, 6, 1)).toThrow(
      expect.objectContaining({ code: 'BAD_ARGUMENT' }),
    );
  });
});

describe("LlamaRunner's KV cache types on the CPU", () => {
  const c: LlamaConfig = {
    dim: 64,
    hiddenDim: 160,
    nLayers: 3,
    nHeads: 4,
    nKvHeads: 2,
    vocabSize: 96,
    maxSeqLen: 32,
    ropeTheta: 10000,
    normEps: 1e-5,
    sharedClassifier: false,
  };
  const weights = randomLlamaWeights(c, 7);

  it('f16 is half the cache bytes, and what planMemory counts (kv and act f16 alike)', () => {
    const be = new CountingCpu();
    const model = loadLlama(be, c, weights);
    const slots = 3,
      maxT = 20,
      maxRows = 8;
    const bytes: Partial<Record<KvType, number>> = {};
    for (const kv of ['f32', 'f16'] as const) {
      const before = be.dedicated;
      const runner = new LlamaRunner(model, { slots, maxT, maxRows, kv });
      const limits = { maxBufferSize: 2 ** 30, maxStorageBufferBindingSize: 2 ** 30, memoryBudget: 2 ** 30 };
      const req = {
        kind: 'inference',
        config: c,
        weights: { matrices: 'f32' },
        sequences: slots,
        context: maxT,
        maxRows,
        limits,
      } as const;
      const plan = planMemory({ ...req, kv });
      expect(runner.kv).toBe(kv);
      expect(runner.cacheBytes).toBe(plan.items.kv);
      expect(planMemory({ ...req, act: kv }).items.kv).toBe(plan.items.kv);
      expect(be.dedicated - before).toBe(
        plan.items.kv + plan.items.activations + plan.items.logits + 5 * maxRows * 4,
      );
      bytes[kv] = runner.cacheBytes;
      runner.destroy();
    }
    expect(bytes.f32).toBe(2 * c.nLayers * slots * maxT * kvDim(c) * 4);
    expect(bytes.f16).toBe(bytes.f32! / 2);
  });

  it('f16 logits stay within f16 rounding of the f32 logits over a prompt', async () => {
    const be = new CpuBackend();
    const model = loadLlama(be, c, weights);
    const rows = Array.from({ length: 20 }, (_, pos) => ({ slot: 1, pos, token: (pos * 37 + 5) % 96 }));
    const outs = rows.map((_, i) => i);
    const logits: Float32Array[] = [];
    for (const kv of ['f32', 'f16'] as const) {
      const runner = new LlamaRunner(model, { slots: 2, maxT: 20, kv });
      logits.push(await runner.forward(rows, outs));
    }
    const [a, b] = logits as [Float32Array, Float32Array];
    const err = Math.max(...a.map((x, i) => Math.abs(x - b[i]!)));
    expect(err).toBeGreaterThan(0);
    expect(err).toBeLessThan(1e-2 * Math.max(...a.map(Math.abs)));
  });
});
