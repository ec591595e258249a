// A KV cache split across bindings by sequence slots (infer/runner.ts): when one layer's cache is
// larger than one binding, the runner keeps it in parts of whole slots, and kv_cache_write and every
// attention_decode kernel take the part's first slot (`slot0`): rows of other slots are skipped and
// their output left alone. A split cache gives the same bits as a whole one — on the CPU reference,
// in each GPU kernel (f32 and f16 caches), and for a whole model's logits and greedy tokens. One
// sequence over a binding is refused: tests/gpu/limits.test.ts.
import { describe, expect, it } from 'vitest';
import { GpuBackend } from '../../src/engine/backend/gpu.ts';
import { Gpu } from '../../src/engine/gpu/gpu.ts';
import { nodeGpu } from '../../src/engine/gpu/node.ts';
import type { Tensor } from '../../src/engine/gpu/tensor.ts';
import { LlamaRunner, type Row } from '../../src/engine/infer/runner.ts';
import { packKvF16, type KvType } from '../../src/engine/kvcache.ts';
import { loadLlama } from '../../src/engine/model/llama.ts';
import * as gpuOp from '../../src/engine/ops/attention.ts';
import * as ref from '../../src/engine/ref/attention.ts';
import { randArray } from '../helpers/fd.ts';
import { testGpu } from '../helpers/gpu.ts';
import { stories260K } from '../helpers/stories.ts';

// 5 slots in parts of 2, 2 and 1; GQA (4 query heads on 2 KV heads), head size 8
const S = 5,
  PER = 2,
  maxT = 9,
  NH = 4,
  NKV = 2,
  HS = 8;
const C = NKV * HS;
// rows of every slot, prefill-like (several positions of one slot) and decode-like, out of order
const ROWS: [number, number][] = [
  [3, 0],
  [0, 0],
  [4, 0],
  [0, 1],
  [2, 0],
  [1, 0],
  [3, 1],
  [0, 2],
  [2, 1],
  [4, 1],
  [1, 1],
  [3, 2],
];
const R = ROWS.length;
const info = new Uint32Array(ROWS.flatMap(([s, t]) => [s, t]));
const k = randArray(Float32Array, R * C, 1);
const v = randArray(Float32Array, R * C, 2);
const q = randArray(Float32Array, R * NH * HS, 3);
const parts = [0, 2, 4].map((slot0) => ({ slot0, slots: Math.min(PER, S - slot0) }));

/** Cache words of `slots` slots (f16: two values per u32). */
const cacheOf = (kv: KvType, slots: number) =>
  kv === 'f16' ? new Uint32Array((slots * maxT * C) / 2) : new Float32Array(slots * maxT * C);

describe('a KV cache split by slots = the whole cache', () => {
  for (const kv of ['f32', 'f16'] as const) {
    it(`CPU reference, ${kv}: each part holds its slots' rows; the outputs are the same bits`, () => {
      const kw = cacheOf(kv, S),
        vw = cacheOf(kv, S);
      ref.kvCacheWrite(kw, vw, k, v, info, R, NKV, HS, maxT);
      const whole = new Float32Array(R * NH * HS);
      ref.attentionDecode(whole, q, kw, vw, info, R, NH, NKV, HS, maxT);
      const split = new Float32Array(R * NH * HS).fill(NaN);
      const wordsPerSlot = kw.length / S;
      for (const { slot0, slots } of parts) {
        const kp = cacheOf(kv, slots),
          vp = cacheOf(kv, slots);
        ref.kvCacheWrite(kp, vp, k, v, info, R, NKV, HS, maxT, slot0);
        // the part is the whole cache's slots slot0 … slot0 + slots − 1, word for word
        expect(kp).toEqual(kw.slice(slot0 * wordsPerSlot, (slot0 + slots) * wordsPerSlot));
        const before = split.slice();
        ref.attentionDecode(split, q, kp, vp, info, R, NH, NKV, HS, maxT, slot0);
        // rows of other slots untouched
        ROWS.forEach(([s], r) => {
          if (s < slot0 || s >= slot0 + slots)
            expect(split.subarray(r * NH * HS, (r + 1) * NH * HS)).toEqual(
              before.subarray(r * NH * HS, (r + 1) * NH * HS),
            );
        });
      }
      expect(split).toEqual(whole);
    });

    it(`GPU, ${kv}: kv_cache_write and every decode kernel with slot0 = the whole cache`, async () => {
      const gpu = await testGpu();
      const made: Tensor[] = [];
      const up = (data: Float32Array | Uint32Array, label: string) => {
        const t = gpu.fromData([data.length], data, label);
        made.push(t);
        return t;
      };
      // the CPU reference's whole-cache output (the kernels equal it: attention.test.ts, kv-f16.test.ts)
      const kw = cacheOf(kv, S),
        vw = cacheOf(kv, S);
      ref.kvCacheWrite(kw, vw, k, v, info, R, NKV, HS, maxT);
      await gpu.checked(async () => {
        const tk = up(k, 'k'),
          tv = up(v, 'v'),
          tq = up(q, 'q'),
          tinfo = up(info, 'rowInfo');
        const tparts = parts.map(({ slots }) => ({
          kc: up(cacheOf(kv, slots), 'kcache'),
          vc: up(cacheOf(kv, slots), 'vcache'),
        }));
        parts.forEach(({ slot0 }, p) =>
          gpuOp.kvCacheWrite(gpu, tparts[p]!.kc, tparts[p]!.vc, tk, tv, tinfo, R, NKV, HS, maxT, slot0),
        );
        const words = kw.length / S;
        for (const [p, { slot0, slots }] of parts.entries()) {
          const got = kv === 'f16' ? await gpu.readU32(tparts[p]!.kc) : await gpu.read(tparts[p]!.kc);
          expect(got, `part ${p}`).toEqual(kw.slice(slot0 * words, (slot0 + slots) * words));
        }
        const whole = up(new Float32Array(R * NH * HS), 'whole');
        const tkw = up(kw, 'kw'),
          tvw = up(vw, 'vw');
        const split = up(new Float32Array(R * NH * HS), 'split');
        for (const variant of ['parallel', 'serial', 'serial4'] as const) {
          gpuOp.attentionDecode(gpu, whole, tq, tkw, tvw, tinfo, R, NH, NKV, HS, maxT, 0, variant);
          gpu.upload(split, new Float32Array(R * NH * HS).fill(NaN));
          parts.forEach(({ slot0 }, p) =>
            gpuOp.attentionDecode(
              gpu,
              split,
              tq,
              tparts[p]!.kc,
              tparts[p]!.vc,
              tinfo,
              R,
              NH,
              NKV,
              HS,
              maxT,
              slot0,
              variant,
            ),
          );
          const w = await gpu.read(whole);
          expect(w.every(Number.isFinite)).toBe(true);
          // every row written once, by its own part, with the same bits as the whole cache's
          expect(await gpu.read(split), variant).toEqual(w);
        }
      });
      for (const t of made) t.buffer.destroy();
    });
  }

  it('f16 packing of a part is the packing of its slots (kvcache.ts)', () => {
    const kw = cacheOf('f16', S) as Uint32Array;
    const vw = cacheOf('f16', S) as Uint32Array;
    ref.kvCacheWrite(kw, vw, k, v, info, R, NKV, HS, maxT);
    // slot 3, position 1 is row 6: its k values, rounded and packed
    const at = (3 * maxT + 1) * (C / 2);
    expect(kw.subarray(at, at + C / 2)).toEqual(packKvF16(k.subarray(6 * C, 7 * C)));
  });
});

describe('LlamaRunner on a small binding limit: the cache in parts, the same logits', () => {
  const { config, weights } = stories260K();
  const prompts = [
    [1, 403, 407],
    [1, 29, 351, 280],
    [1, 68],
    [1, 420, 280, 365, 29],
    [1, 72, 70],
  ];
  const steps = 12;

  /** Every step's logits of the 5 prompts decoded together (greedy), and the tokens. */
  async function run(gpu: Gpu, kv: KvType) {
    const be = new GpuBackend(gpu);
    const model = loadLlama(be, config, weights);
    const runner = new LlamaRunner(model, { slots: prompts.length, maxT: 256, maxRows: 8, kv });
    const V = config.vocabSize;
    const rows: Row[] = [];
    const outputs: number[] = [];
    prompts.forEach((p, slot) => {
      p.forEach((token, pos) => rows.push({ slot, pos, token }));
      outputs.push(rows.length - 1);
    });
    const all: Float32Array[] = [];
    const tokens: number[][] = prompts.map(() => []);
    let logits = await runner.forward(rows, outputs);
    for (let step = 0; step < steps; step++) {
      all.push(logits.slice());
      const next = prompts.map((p, slot) => {
        const l = logits.subarray(slot * V, (slot + 1) * V);
        const token = l.indexOf(Math.max(...l));
        tokens[slot]!.push(token);
        return { slot, pos: p.length + step, token };
      });
      logits = await runner.forward(
        next,
        next.map((_, i) => i),
      );
    }
    const parts = Math.ceil(prompts.length / runner.slotsPerPart);
    runner.destroy();
    for (const t of model.tensors) be.destroy(t);
    return { all, tokens, parts, slotsPerPart: runner.slotsPerPart };
  }

  for (const kv of ['f32', 'f16'] as const) {
    it(`${kv} cache: 5 sequences in parts of 2, 2 and 1 decode exactly as in one buffer`, async () => {
      // one slot of a layer: 256 positions × 32 values × 4 B (f32) = 32 KiB; f16 half. The limit
      // holds two (the embedding is split by rows; the runner's 8-row buffers fit)
      const slot = 256 * 32 * (kv === 'f32' ? 4 : 2);
      const whole = await run(await testGpu(), kv);
      const small = await Gpu.create(await nodeGpu(), {
        limits: { maxStorageBufferBindingSize: 2 * slot + 4 },
      });
      try {
        const split = await run(small, kv);
        expect(whole.parts).toBe(1);
        expect(split.slotsPerPart).toBe(2);
        expect(split.parts).toBe(3);
        expect(split.tokens).toEqual(whole.tokens);
        // different prompts: the sequences really are different rows of the cache
        expect(new Set(split.tokens.map((t) => t.join())).size).toBeGreaterThan(1);
        split.all.forEach((l, i) => expect(l, `step ${i}`).toEqual(whole.all[i]));
      } finally {
        small.destroy();
      }
    });
  }
});
