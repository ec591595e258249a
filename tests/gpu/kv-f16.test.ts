// The f16 KV cache (src/engine/kvcache.ts): kv_cache_write_f16 stores exactly the reference's bits
// (special values included), the f16 decode kernels (every variant that takes the head size) equal
// the reference on GQA shapes with head sizes 4–128 at odd positions, and stories260K with kv 'f16'
// generates the same tokens on the GPU as on the CPU reference; its cache is half the bytes, as the
// planner counts.
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../../src/engine/backend/cpu.ts';
import { GpuBackend } from '../../src/engine/backend/gpu.ts';
import type { Backend, BackendTensor } from '../../src/engine/backend/types.ts';
import { EngineError } from '../../src/engine/errors.ts';
import type { Gpu } from '../../src/engine/gpu/gpu.ts';
import type { Tensor } from '../../src/engine/gpu/tensor.ts';
import { generate } from '../../src/engine/infer/generate.ts';
import { LlamaRunner, type Row } from '../../src/engine/infer/runner.ts';
import { createSamplers, Sampler, samplerSeeds } from '../../src/engine/infer/sampler.ts';
import { packKvF16, roundKvF16, type KvType } from '../../src/engine/kvcache.ts';
import { kvDim, type LlamaConfig } from '../../src/engine/model/config.ts';
import { loadLlama } from '../../src/engine/model/llama.ts';
import { randomLlamaWeights } from '../../src/engine/model/random.ts';
import * as gpuOp from '../../src/engine/ops/attention.ts';
import { planMemory } from '../../src/engine/plan.ts';
import * as ref from '../../src/engine/ref/attention.ts';
import { checkOp } from '../helpers/checkop.ts';
import { randArray, rng } from '../helpers/fd.ts';
import { testGpu } from '../helpers/gpu.ts';
import { EXPECTED, stories260K } from '../helpers/stories.ts';

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

/** Integers in [-m, m] (exact in f16 up to 2048). */
function ints(n: number, seed: number, m: number): Float32Array {
  return randArray(Float32Array, n, seed, -m - 0.5, m + 0.5).map(Math.round);
}

const variantsFor = (HS: number): gpuOp.DecodeVariant[] =>
  gpuOp.serial4Fits(HS) ? ['parallel', 'serial', 'serial4'] : ['parallel', 'serial'];

const f32 = (x: number) => Math.fround(x);

/** Values at every edge of the f16 encoding, then random magnitudes from 1e-6 to 1e5. */
function edgeValues(): Float32Array {
  const e = [
    0,
    -0,
    1,
    -1,
    65504,
    -65504,
    65505,
    65519.99,
    65520,
    -65520,
    1e6,
    Infinity,
    -Infinity,
    NaN,
    -NaN,
    2 ** -14,
    -(2 ** -14),
    2 ** -14 * (1 - 2 ** -24),
    2 ** -15,
    2 ** -24,
    1e-7,
    1e-40, // an f32 subnormal
    1 + 2 ** -11, // tie: stays 1 (even)
    1 + 3 * 2 ** -11, // tie: up to the even 1 + 2^-9
    1 + 2 ** -11 + 2 ** -23,
    1 + 2 ** -11 - 2 ** -23,
    2 - 2 ** -12, // rounds up across the exponent
    -(2 - 2 ** -12),
    0.1,
    -0.3333333,
    1000.25,
    2049, // a tie between 2048 and 2050
    2051,
    3.14159,
  ].map(f32);
  const r = rng(11);
  while (e.length % 64 !== 0) e.push(f32((r() * 2 - 1) * 10 ** (r() * 11 - 6)));
  return Float32Array.from(e);
}

describe('f16 KV cache kernels vs the reference', () => {
  it('kv_cache_write_f16 stores the reference bits for every edge of the encoding', async () => {
    const gpu = await testGpu();
    const vals = edgeValues();
    const NKV = 2,
      HS = 8,
      C = NKV * HS,
      R = vals.length / C;
    const info = new Uint32Array(Array.from({ length: R }, (_, r) => [0, r]).flat());
    const kc = new Uint32Array((R * C) / 2),
      vc = new Uint32Array((R * C) / 2);
    const neg = vals.map((x) => -x);
    ref.kvCacheWrite(kc, vc, vals, neg, info, R, NKV, HS, R);
    expect(Array.from(kc)).toEqual(Array.from(packKvF16(vals)));
    expect(Array.from(vc)).toEqual(Array.from(packKvF16(neg)));
    await gpu.checked(async () => {
      const [up, destroy] = uploader(gpu);
      const tkc = up(new Uint32Array(kc.length).fill(0xdeadbeef), 'kcache'),
        tvc = up(new Uint32Array(kc.length).fill(0xdeadbeef), 'vcache');
      gpuOp.kvCacheWrite(gpu, tkc, tvc, up(vals, 'k'), up(neg, 'v'), up(info, 'rowInfo'), R, NKV, HS, R);
      expect(Array.from(await gpu.readU32(tkc))).toEqual(Array.from(kc));
      expect(Array.from(await gpu.readU32(tvc))).toEqual(Array.from(vc));
      destroy();
    });
  });

  it('kv_cache_write_f16 skips rows outside the cache', async () => {
    const gpu = await testGpu();
    const S = 2,
      maxT = 3,
      NKV = 1,
      HS = 8,
      R = 2;
    const kc = packKvF16(randArray(Float32Array, S * maxT * NKV * HS, 1));
    await gpu.checked(async () => {
      const [up, destroy] = uploader(gpu);
      const tkc = up(kc, 'kcache'),
        tvc = up(kc, 'vcache');
      const kv = up(randArray(Float32Array, R * NKV * HS, 2), 'kv');
      const info = up(new Uint32Array([0, maxT, S, 0]), 'rowInfo'); // past the end; slot past the end
      gpuOp.kvCacheWrite(gpu, tkc, tvc, kv, kv, info, R, NKV, HS, maxT);
      expect(Array.from(await gpu.readU32(tkc))).toEqual(Array.from(kc));
      expect(Array.from(await gpu.readU32(tvc))).toEqual(Array.from(kc));
      destroy();
    });
  });

  it('a prefill through the f16 cache equals attention on f16-rounded k and v', async () => {
    const gpu = await testGpu();
    const lens = [5, 1, 7],
      slots = [2, 0, 3],
      S = 4,
      maxT = 9,
      NH = 4,
      NKV = 2,
      HS = 16;
    const B = lens.length,
      T = Math.max(...lens);
    const q = randArray(Float32Array, B * T * NH * HS, 1);
    const k = randArray(Float32Array, B * T * NKV * HS, 2),
      v = randArray(Float32Array, B * T * NKV * HS, 3);
    const outF = new Float32Array(B * T * NH * HS);
    ref.attentionForward(
      outF,
      new Float32Array(B * NH * T * T),
      q,
      roundKvF16(k),
      roundKvF16(v),
      B,
      T,
      NH,
      NKV,
      HS,
    );
    const r = rng(4);
    const rows = lens.flatMap((len, b) => Array.from({ length: len }, (_, t): [number, number] => [b, t]));
    rows.sort(() => r() - 0.5);
    const R = rows.length;
    const info = new Uint32Array(rows.flatMap(([b, t]) => [slots[b]!, t]));
    const gather = (x: Float32Array, C: number) => {
      const y = new Float32Array(R * C);
      rows.forEach(([b, t], i) => y.set(x.subarray((b * T + t) * C, (b * T + t + 1) * C), i * C));
      return y;
    };
    const qr = gather(q, NH * HS),
      kr = gather(k, NKV * HS),
      vr = gather(v, NKV * HS);
    const expected = gather(outF, NH * HS);
    const nw = (S * maxT * NKV * HS) / 2;
    const kc = new Uint32Array(nw),
      vc = new Uint32Array(nw);
    ref.kvCacheWrite(kc, vc, kr, vr, info, R, NKV, HS, maxT);
    const outD = new Float32Array(R * NH * HS);
    ref.attentionDecode(outD, qr, kc, vc, info, R, NH, NKV, HS, maxT);
    checkOp('attention', outD, expected);
    await gpu.checked(async () => {
      const [up, destroy] = uploader(gpu);
      // garbage words that are NaN pairs: reading anything not written shows
      const tkc = up(new Uint32Array(nw).fill(0x7e007e00), 'kcache'),
        tvc = up(new Uint32Array(nw).fill(0x7e007e00), 'vcache');
      const tinfo = up(info, 'rowInfo'),
        tout = up(new Float32Array(R * NH * HS), 'out');
      gpuOp.kvCacheWrite(gpu, tkc, tvc, up(kr, 'k'), up(vr, 'v'), tinfo, R, NKV, HS, maxT);
      const tq = up(qr, 'q');
      for (const variant of variantsFor(HS)) {
        gpu.upload(tout, new Float32Array(R * NH * HS).fill(NaN));
        gpuOp.attentionDecode(gpu, tout, tq, tkc, tvc, tinfo, R, NH, NKV, HS, maxT, 0, variant);
        const got = await gpu.read(tout);
        checkOp(`attention_decode_f16(${variant})`, got, outD);
        checkOp(`attention_decode_f16(${variant})`, got, expected);
      }
      destroy();
    });
  });

  const decodes: [[number, number][], number, number, number, number, number, 'rand' | 'extreme'][] = [
    // rows [slot, pos], S, maxT, NH, NKV, HS, values (extreme: integer q, k → sharp softmax)
    [
      [
        [0, 149],
        [1, 65],
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
        [1, 101],
        [0, 5],
      ],
      2,
      128,
      4,
      4,
      64,
      'rand',
    ],
    [[[0, 71]], 1, 72, 8, 2, 128, 'rand'],
    [
      [
        [0, 33],
        [1, 1],
        [2, 17],
      ],
      3,
      40,
      6,
      3,
      8,
      'rand',
    ],
    [
      [
        [0, 13],
        [1, 7],
      ],
      2,
      14,
      4,
      2,
      12,
      'rand',
    ],
    [[[0, 9]], 1, 10, 2, 1, 4, 'extreme'],
    [
      [
        [0, 1023],
        [0, 511],
      ],
      1,
      1024,
      2,
      1,
      8,
      'rand',
    ],
  ];
  for (const [rowList, S, maxT, NH, NKV, HS, range] of decodes) {
    it(`decode rows ${rowList.map(([s, p]) => `${s}@${p}`).join(' ')} NH=${NH} NKV=${NKV} HS=${HS} ${range}`, async () => {
      const gpu = await testGpu();
      const R = rowList.length;
      const info = new Uint32Array(rowList.flat());
      const nc = S * maxT * NKV * HS;
      const gen = (n: number, seed: number) =>
        range === 'rand' ? randArray(Float32Array, n, seed) : ints(n, seed, 10);
      const kc = packKvF16(gen(nc, 1)),
        vc = packKvF16(randArray(Float32Array, nc, 2));
      const kc0 = kc.slice(),
        vc0 = vc.slice();
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
        expect(Array.from(await gpu.readU32(tkc))).toEqual(Array.from(kc));
        expect(Array.from(await gpu.readU32(tvc))).toEqual(Array.from(vc));
        const tq = up(q, 'q');
        for (const variant of [undefined, ...variantsFor(HS)]) {
          gpu.upload(tout, new Float32Array(R * NH * HS).fill(NaN));
          gpuOp.attentionDecode(gpu, tout, tq, tkc, tvc, tinfo, R, NH, NKV, HS, maxT, 0, variant);
          checkOp(`attention_decode_f16(${variant ?? 'default'})`, await gpu.read(tout), out);
        }
        destroy();
      });
    });
  }

  it('refuses an odd head size or a k/v dtype mismatch (BAD_ARGUMENT)', async () => {
    const gpu = await testGpu();
    const [up, destroy] = uploader(gpu);
    const w = up(new Uint32Array(12), 'kcache'),
      f = up(new Float32Array(24), 'vcache');
    const x = up(new Float32Array(6), 'x'),
      info = up(new Uint32Array([0, 0]), 'rowInfo');
    const code = (fn: () => void) => {
      try {
        fn();
      } catch (e) {
        return e instanceof EngineError ? e.code : String(e);
      }
      return 'no error';
    };
    expect(code(() => gpuOp.kvCacheWrite(gpu, w, w, x, x, info, 1, 2, 3, 4))).toBe('BAD_ARGUMENT');
    expect(code(() => gpuOp.attentionDecode(gpu, x, x, w, w, info, 1, 2, 2, 3, 4))).toBe('BAD_ARGUMENT');
    expect(code(() => gpuOp.kvCacheWrite(gpu, w, f, x, x, info, 1, 1, 6, 4))).toBe('BAD_ARGUMENT');
    expect(code(() => gpuOp.attentionDecode(gpu, x, x, f, w, info, 1, 1, 1, 6, 4))).toBe('BAD_ARGUMENT');
    destroy();
  });
});

// ---------------------------------------------------------------------------------------------

const { config, weights, tokenizer } = stories260K();

async function backend(kind: 'gpu' | 'cpu'): Promise<Backend<BackendTensor>> {
  return (kind === 'cpu'
    ? new CpuBackend()
    : new GpuBackend(await testGpu())) as unknown as Backend<BackendTensor>;
}

async function greedy(kind: 'gpu' | 'cpu', steps: number, kv: KvType) {
  const be = await backend(kind);
  const model = loadLlama(be, config, weights);
  const runner = new LlamaRunner(model, { slots: 1, maxT: steps, kv });
  const res = await generate(runner, tokenizer, [[tokenizer.bos]], {
    steps,
    temperature: 0,
    topp: 0.9,
    seed: 42,
    stopTokens: [tokenizer.bos],
  });
  runner.destroy();
  for (const t of model.tensors) be.destroy(t);
  return { text: res.texts[0]!, tokens: res.tokens[0]! };
}

/**
 * Samples `steps` tokens after each prompt with one sampler per sequence: all prompts in one
 * runner (a slot each, decode batched) or, with `alone`, each prompt in its own runner.
 */
async function sample(prompts: number[][], samplers: Sampler[], steps: number, kv: KvType, alone: boolean) {
  const be = await backend('gpu');
  const model = loadLlama(be, config, weights);
  const V = config.vocabSize;
  const groups = alone ? prompts.map((_, i) => [i]) : [prompts.map((_, i) => i)];
  const out: number[][] = prompts.map(() => []);
  for (const seqs of groups) {
    const maxT = Math.max(...seqs.map((s) => prompts[s]!.length)) + steps;
    const runner = new LlamaRunner(model, { slots: seqs.length, maxT, kv });
    const rows: Row[] = [];
    const outputs: number[] = [];
    seqs.forEach((s, slot) => {
      prompts[s]!.forEach((token, pos) => rows.push({ slot, pos, token }));
      outputs.push(rows.length - 1);
    });
    let logits = await runner.forward(rows, outputs);
    for (let step = 0; step < steps; step++) {
      const next: Row[] = seqs.map((s, slot) => {
        const token = samplers[s]!.sample(logits.slice(slot * V, (slot + 1) * V));
        out[s]!.push(token);
        return { slot, pos: prompts[s]!.length + step, token };
      });
      if (step < steps - 1)
        logits = await runner.forward(
          next,
          next.map((_, i) => i),
        );
    }
    runner.destroy();
  }
  for (const t of model.tensors) be.destroy(t);
  return out;
}

describe('stories260K with an f16 KV cache', () => {
  it('greedy from BOS, 200 steps: the GPU gives the CPU reference tokens (both kv f16)', async () => {
    const gpu = await greedy('gpu', 200, 'f16');
    const cpu = await greedy('cpu', 200, 'f16');
    expect(gpu.tokens).toEqual(cpu.tokens);
    expect(gpu.text).toBe(cpu.text);
    // against llama2.c's f32 text (see docs/engine.md, KV cache types)
    expect(gpu.text).toBe(EXPECTED.greedy_200);
  });

  it('batched sampling (4 sequences, temperature 0.8, top-p 0.9) = one at a time, token for token', async () => {
    const prompts = ['Once upon a time', 'Tom had a red', '', 'The little dog was very happy and'].map((p) =>
      tokenizer.encode(p, true, false),
    );
    const V = config.vocabSize;
    const batched = await sample(prompts, createSamplers(V, 0.8, 0.9, 7, 4), 40, 'f16', false);
    const seeds = samplerSeeds(7, 4);
    const alone = await sample(
      prompts,
      seeds.map((s) => new Sampler(V, 0.8, 0.9, s)),
      40,
      'f16',
      true,
    );
    expect(batched).toEqual(alone);
    expect(new Set(batched.map((t) => t.join())).size).toBe(4);
  });
});

describe('f16 KV cache memory', () => {
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
  it("the runner's cache is half the bytes in f16, and what planMemory counts, on the GPU", async () => {
    const gpu = await testGpu();
    const be = new GpuBackend(gpu);
    const model = loadLlama(be, c, randomLlamaWeights(c, 7));
    const slots = 3,
      maxT = 20,
      maxRows = 8;
    const allocated: Record<KvType, { runner: number; cache: number }> = {
      f32: { runner: 0, cache: 0 },
      f16: { runner: 0, cache: 0 },
    };
    for (const kv of ['f32', 'f16'] as const) {
      const before = gpu.liveBuffers.bytes;
      const runner = new LlamaRunner(model, { slots, maxT, maxRows, kv });
      allocated[kv] = { runner: gpu.liveBuffers.bytes - before, cache: runner.cacheBytes };
      const plan = planMemory({
        kind: 'inference',
        config: c,
        weights: { matrices: 'f32' },
        sequences: slots,
        context: maxT,
        maxRows,
        kv,
        limits: { maxBufferSize: 2 ** 30, maxStorageBufferBindingSize: 2 ** 30, memoryBudget: 2 ** 30 },
      });
      expect(runner.cacheBytes).toBe(plan.items.kv);
      // every buffer the runner made: cache, activations, logits and the u32 index buffers
      expect(gpu.liveBuffers.bytes - before).toBe(
        plan.items.kv + plan.items.activations + plan.items.logits + 5 * maxRows * 4,
      );
      runner.destroy();
      expect(gpu.liveBuffers.bytes).toBe(before);
    }
    const f32Cache = 2 * c.nLayers * slots * maxT * kvDim(c) * 4; // 46,080 bytes
    expect(allocated.f32.cache).toBe(f32Cache);
    expect(allocated.f16.cache).toBe(f32Cache / 2);
    expect(allocated.f32.runner - allocated.f16.runner).toBe(f32Cache / 2);
    for (const t of model.tensors) be.destroy(t);
  });
});
