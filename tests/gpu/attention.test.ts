import { describe, it } from 'vitest';
import type { Gpu } from '../../src/engine/gpu/gpu.ts';
import type { Tensor } from '../../src/engine/gpu/tensor.ts';
import * as gpuOp from '../../src/engine/ops/attention.ts';
import * as ref from '../../src/engine/ref/attention.ts';
import { checkOp } from '../helpers/checkop.ts';
import { tolFor } from '../helpers/tolerances.ts';
import { randArray, rng } from '../helpers/fd.ts';
import { testGpu } from '../helpers/gpu.ts';

/** Uploads test data and remembers the tensor so the test can destroy it. */
function uploader(gpu: Gpu): [(data: Float32Array | Uint32Array, label: string) => Tensor, () => void] {
  const made: Tensor[] = [];
  const up = (data: Float32Array | Uint32Array, label: string) => {
    const t = gpu.fromData([data.length], data, label);
    made.push(t);
    return t;
  };
  return [up, () => made.forEach((t) => t.buffer.destroy())];
}

/** Integers in [-m, m]: with HS = 16 (scale 1/4) every score is exact in f32, up to ±m²·4. */
function ints(n: number, seed: number, m: number): Float32Array {
  const a = randArray(Float32Array, n, seed, -m - 0.5, m + 0.5);
  return a.map(Math.round);
}

/** Every kernel variant (training and decode) that takes head size HS. */
const variantsFor = (HS: number): gpuOp.DecodeVariant[] =>
  gpuOp.serial4Fits(HS) ? ['parallel', 'serial', 'serial4'] : ['parallel', 'serial'];

describe('attention (training) GPU vs reference', () => {
  const cases = [
    // B, T, NH, NKV, HS, value range (extreme: integer q, k → scores up to ±400)
    [1, 1, 1, 1, 8, 'rand'],
    [2, 5, 4, 2, 16, 'rand'],
    [1, 7, 2, 2, 8, 'rand'],
    [2, 3, 8, 1, 16, 'rand'],
    [1, 67, 2, 1, 64, 'rand'],
    [1, 3, 2, 1, 128, 'rand'],
    [2, 9, 4, 2, 16, 'extreme'],
    [2, 6, 3, 3, 12, 'rand'],
    [1, 5, 2, 1, 4, 'extreme'],
    [3, 35, 4, 2, 8, 'rand'],
  ] as const;
  for (const [B, T, NH, NKV, HS, range] of cases) {
    it(`B=${B} T=${T} NH=${NH} NKV=${NKV} HS=${HS} ${range}`, async () => {
      const gpu = await testGpu();
      const nq = B * T * NH * HS,
        nkv = B * T * NKV * HS,
        na = B * NH * T * T;
      const q = range === 'rand' ? randArray(Float32Array, nq, 1) : ints(nq, 1, 10);
      const k = range === 'rand' ? randArray(Float32Array, nkv, 2) : ints(nkv, 2, 10);
      const v = randArray(Float32Array, nkv, 3);
      const dout = randArray(Float32Array, nq, 4);
      const prevQ = randArray(Float32Array, nq, 5),
        prevK = randArray(Float32Array, nkv, 6);
      const prevV = randArray(Float32Array, nkv, 7);
      const out = new Float32Array(nq),
        att = new Float32Array(na),
        datt = new Float32Array(na);
      ref.attentionForward(out, att, q, k, v, B, T, NH, NKV, HS);
      const dq = new Float32Array(prevQ),
        dk = new Float32Array(prevK),
        dv = new Float32Array(prevV);
      ref.attentionBackward(dq, dk, dv, datt, dout, q, k, v, att, B, T, NH, NKV, HS, true);
      const dqW = new Float32Array(nq),
        dkW = new Float32Array(nkv),
        dvW = new Float32Array(nkv);
      ref.attentionBackward(dqW, dkW, dvW, datt, dout, q, k, v, att, B, T, NH, NKV, HS, false);

      await gpu.checked(async () => {
        const [up, destroy] = uploader(gpu);
        const tq = up(q, 'q'),
          tk = up(k, 'k'),
          tv = up(v, 'v'),
          tdout = up(dout, 'dout');
        // undefined: the kernels the device picks; then every variant that takes this HS
        for (const variant of [undefined, ...variantsFor(HS)]) {
          const check = (op: string, got: Float32Array, expected: Float32Array) =>
            checkOp(variant ? `${op}(${variant})` : op, got, expected, tolFor(op));
          // outputs and scratch start as garbage: every element must be written
          const tout = up(randArray(Float32Array, nq, 8), 'out'),
            tatt = up(randArray(Float32Array, na, 9), 'att');
          const tdatt = up(randArray(Float32Array, na, 10), 'datt');
          const tdq = up(prevQ, 'dq'),
            tdk = up(prevK, 'dk'),
            tdv = up(prevV, 'dv');
          const tdqW = up(prevQ, 'dqW'),
            tdkW = up(prevK, 'dkW'),
            tdvW = up(prevV, 'dvW');
          const dims = [B, T, NH, NKV, HS] as const;
          gpuOp.attentionForward(gpu, tout, tatt, tq, tk, tv, ...dims, variant);
          gpuOp.attentionBackward(gpu, tdq, tdk, tdv, tdatt, tdout, tq, tk, tv, tatt, ...dims, true, variant);
          gpuOp.attentionBackward(
            gpu,
            tdqW,
            tdkW,
            tdvW,
            tdatt,
            tdout,
            tq,
            tk,
            tv,
            tatt,
            ...dims,
            false,
            variant,
          );
          check('attention_forward', await gpu.read(tout), out);
          check('attention_forward', await gpu.read(tatt), att);
          check('attention_backward', await gpu.read(tdq), dq);
          check('attention_backward', await gpu.read(tdk), dk);
          check('attention_backward', await gpu.read(tdv), dv);
          check('attention_backward', await gpu.read(tdqW), dqW);
          check('attention_backward', await gpu.read(tdkW), dkW);
          check('attention_backward', await gpu.read(tdvW), dvW);
        }
        destroy();
      });
    });
  }
});

/** Gathers rows (b, t) of a (B,T,C) array into (R, C). */
function gather(x: Float32Array, rows: [number, number][], T: number, C: number): Float32Array {
  const y = new Float32Array(rows.length * C);
  rows.forEach(([b, t], r) => y.set(x.subarray((b * T + t) * C, (b * T + t + 1) * C), r * C));
  return y;
}

describe('attention against a KV cache', () => {
  const prefills = [
    // sequence lengths, their slots, S, maxT, NH, NKV, HS
    [[4], [0], 1, 4, 2, 2, 8],
    [[3, 6], [1, 0], 2, 8, 8, 1, 16],
    [[5, 1, 7], [2, 0, 3], 4, 9, 4, 2, 16],
  ] as const;
  for (const [lens, slots, S, maxT, NH, NKV, HS] of prefills) {
    it(`prefill of ${lens.length} sequence(s) (${lens.join(', ')}) matches attentionForward`, async () => {
      const gpu = await testGpu();
      const B = lens.length,
        T = Math.max(...lens);
      const q = randArray(Float32Array, B * T * NH * HS, 1);
      const k = randArray(Float32Array, B * T * NKV * HS, 2),
        v = randArray(Float32Array, B * T * NKV * HS, 3);
      const outF = new Float32Array(B * T * NH * HS),
        att = new Float32Array(B * NH * T * T);
      ref.attentionForward(outF, att, q, k, v, B, T, NH, NKV, HS);
      // every token of every sequence, in a scrambled order
      const r = rng(4);
      const rows = lens.flatMap((len, b) => Array.from({ length: len }, (_, t): [number, number] => [b, t]));
      rows.sort(() => r() - 0.5);
      const R = rows.length;
      const info = new Uint32Array(rows.flatMap(([b, t]) => [slots[b]!, t]));
      const qr = gather(q, rows, T, NH * HS),
        kr = gather(k, rows, T, NKV * HS),
        vr = gather(v, rows, T, NKV * HS);
      const outRows = gather(outF, rows, T, NH * HS);
      // the cache starts as NaN: reading anything not written (another slot, a later position) shows
      const kc = new Float32Array(S * maxT * NKV * HS).fill(NaN),
        vc = new Float32Array(kc);
      ref.kvCacheWrite(kc, vc, kr, vr, info, R, NKV, HS, maxT);
      const outD = new Float32Array(R * NH * HS);
      ref.attentionDecode(outD, qr, kc, vc, info, R, NH, NKV, HS, maxT);
      checkOp('attention', outD, outRows);

      await gpu.checked(async () => {
        const [up, destroy] = uploader(gpu);
        const tkc = up(new Float32Array(kc.length).fill(NaN), 'kcache'),
          tvc = up(new Float32Array(kc.length).fill(NaN), 'vcache');
        const tout = up(new Float32Array(R * NH * HS).fill(NaN), 'out'),
          tinfo = up(info, 'rowInfo');
        gpuOp.kvCacheWrite(gpu, tkc, tvc, up(kr, 'k'), up(vr, 'v'), tinfo, R, NKV, HS, maxT);
        checkOp('kv_cache_write', await gpu.read(tkc), kc);
        checkOp('kv_cache_write', await gpu.read(tvc), vc);
        const tq = up(qr, 'q');
        for (const variant of variantsFor(HS)) {
          gpu.upload(tout, new Float32Array(R * NH * HS).fill(NaN));
          gpuOp.attentionDecode(gpu, tout, tq, tkc, tvc, tinfo, R, NH, NKV, HS, maxT, 0, variant);
          const got = await gpu.read(tout);
          checkOp(`attention_decode(${variant})`, got, outD);
          checkOp(`attention_decode(${variant})`, got, outRows);
        }
        destroy();
      });
    });
  }

  it('kvCacheWrite skips rows outside the cache instead of writing into another slot', async () => {
    const gpu = await testGpu();
    const S = 2,
      maxT = 3,
      NKV = 1,
      HS = 8,
      R = 2;
    const info = new Uint32Array([0, maxT, S, 0]); // position past the end; slot past the end
    const kc = randArray(Float32Array, S * maxT * NKV * HS, 1);
    await gpu.checked(async () => {
      const [up, destroy] = uploader(gpu);
      const tkc = up(kc, 'kcache'),
        tvc = up(kc, 'vcache');
      const kv = up(randArray(Float32Array, R * NKV * HS, 2), 'kv');
      gpuOp.kvCacheWrite(gpu, tkc, tvc, kv, kv, up(info, 'rowInfo'), R, NKV, HS, maxT);
      checkOp('kv_cache_write', await gpu.read(tkc), kc);
      checkOp('kv_cache_write', await gpu.read(tvc), kc);
      destroy();
    });
  });

  const decodes = [
    // rows [slot, pos], S, maxT, NH, NKV, HS, values (extreme: integer q, k)
    [
      [
        [0, 149],
        [1, 64],
        [1, 0],
        [0, 63],
      ],
      2,
      150,
      4,
      2,
      16,
      'extreme',
    ],
    [
      [
        [1, 100],
        [0, 5],
      ],
      2,
      128,
      4,
      4,
      64,
      'rand',
    ],
    [[[0, 70]], 1, 71, 2, 2, 128, 'rand'],
    [
      [
        [0, 33],
        [1, 0],
        [2, 17],
      ],
      3,
      40,
      6,
      3,
      12,
      'rand',
    ],
    [[[0, 9]], 1, 10, 2, 1, 4, 'extreme'],
    [
      [
        [0, 2047],
        [0, 1000],
      ],
      1,
      2048,
      2,
      1,
      8,
      'rand',
    ],
  ] as const;
  for (const [rowList, S, maxT, NH, NKV, HS, range] of decodes) {
    it(`decode rows ${rowList.map(([s, p]) => `${s}@${p}`).join(' ')} maxT=${maxT} HS=${HS} ${range}`, async () => {
      const gpu = await testGpu();
      const R = rowList.length;
      const info = new Uint32Array(rowList.flat());
      const nc = S * maxT * NKV * HS;
      const gen = (n: number, seed: number) =>
        range === 'rand' ? randArray(Float32Array, n, seed) : ints(n, seed, 10);
      const kc = gen(nc, 1),
        vc = randArray(Float32Array, nc, 2),
        kc0 = new Float32Array(kc),
        vc0 = new Float32Array(vc);
      const q = gen(R * NH * HS, 3),
        k = gen(R * NKV * HS, 4),
        v = randArray(Float32Array, R * NKV * HS, 5);
      ref.kvCacheWrite(kc, vc, k, v, info, R, NKV, HS, maxT);
      const out = new Float32Array(R * NH * HS);
      ref.attentionDecode(out, q, kc, vc, info, R, NH, NKV, HS, maxT);

      await gpu.checked(async () => {
        const [up, destroy] = uploader(gpu);
        const tkc = up(kc0, 'kcache'),
          tvc = up(vc0, 'vcache'),
          tinfo = up(info, 'rowInfo');
        const tout = up(new Float32Array(R * NH * HS), 'out');
        gpuOp.kvCacheWrite(gpu, tkc, tvc, up(k, 'k'), up(v, 'v'), tinfo, R, NKV, HS, maxT);
        checkOp('kv_cache_write', await gpu.read(tkc), kc);
        checkOp('kv_cache_write', await gpu.read(tvc), vc);
        const tq = up(q, 'q');
        for (const variant of variantsFor(HS)) {
          gpu.upload(tout, new Float32Array(R * NH * HS).fill(NaN));
          gpuOp.attentionDecode(gpu, tout, tq, tkc, tvc, tinfo, R, NH, NKV, HS, maxT, 0, variant);
          checkOp(`attention_decode(${variant})`, await gpu.read(tout), out);
        }
        destroy();
      });
    });
  }
});
