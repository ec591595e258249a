/**
 * Frozen weights split across buffers by rows (backend/gpu.ts `uploadWeightSplit`, `Tensor.parts`)
 * when larger than one binding. Every weight dtype, split into 3 parts (24, 24, 22 rows) and into
 * 4 (23, 23, 23, 1): the forward (the any-B entry, the decode kernel, both any-B variants, with and
 * without accumulate, B = 1, 5, 16, 40) is bit for bit the unsplit forward (the same kernel runs
 * per part; the column copy adds in the same f32 operation), the input gradient is within the
 * matmul tolerance of the unsplit one (a sum over N in another order); the embedding gather from a
 * split f32 / q8_0 / q4_0 table equals the CPU reference exactly. Then whole models on a device
 * whose binding limit is 12 KiB: a random LLaMA's logits and greedy tokens equal those of the same
 * model on an unlimited device (f32 and q8_0 matrices, tied and untied classifier), and a LoRA
 * step's gradients through the split weights match.
 */
import { describe, expect, it } from 'vitest';
import { GpuBackend, rowsPerPart, uploadWeightSplit } from '../../src/engine/backend/gpu.ts';
import { Tape } from '../../src/engine/autograd/tape.ts';
import { EngineError } from '../../src/engine/errors.ts';
import { Gpu } from '../../src/engine/gpu/gpu.ts';
import { nodeGpu } from '../../src/engine/gpu/node.ts';
import { byteSize, type DType, type Tensor } from '../../src/engine/gpu/tensor.ts';
import { generate } from '../../src/engine/infer/generate.ts';
import { LlamaRunner } from '../../src/engine/infer/runner.ts';
import type { LlamaConfig } from '../../src/engine/model/config.ts';
import { destroyLlama, loadLlama, type LlamaModel } from '../../src/engine/model/llama.ts';
import { createLora, destroyLora } from '../../src/engine/model/lora.ts';
import { randomLlamaWeights } from '../../src/engine/model/random.ts';
import * as emb from '../../src/engine/ops/embedding.ts';
import * as mm from '../../src/engine/ops/matmul.ts';
import {
  dequantizeWeight,
  quantizeWeight,
  uploadWeightAny,
  WEIGHT_DTYPES,
  type WeightDType,
} from '../../src/engine/quant-gpu.ts';
import * as ref from '../../src/engine/ref/embedding.ts';
import { loraHook, llamaForward } from '../../src/engine/train/forward.ts';
import { checkOp } from '../helpers/checkop.ts';
import { TOL } from '../helpers/tolerances.ts';
import { randArray, rng } from '../helpers/fd.ts';
import { testGpu } from '../helpers/gpu.ts';
import { EXPECTED, stories260K } from '../helpers/stories.ts';

const N = 70;
/** Row lengths: 2 groups of 32 (f32, q8_0, q4_0), 3 (q4f16_1), 2 super-blocks of 256 (q4_k, q6_k). */
const K_OF: Record<WeightDType, number> = { f32: 64, q8_0: 64, q4_0: 64, q4f16_1: 96, q4_k: 512, q6_k: 512 };
const BATCHES = [1, 5, 16, 40];

/** The weight's data as `be.weight` takes it: f32 values, or the file's bytes. */
function weightData(dtype: WeightDType, rows: number, K: number, seed: number): Float32Array | Uint8Array {
  const w = randArray(Float32Array, rows * K, seed);
  return dtype === 'f32' ? w : quantizeWeight(dtype, w, rows, K);
}

/** Index of the first element where a and b differ (-1: equal, bit for bit). */
function firstDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return 0;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}

async function readAll(gpu: Gpu, ts: readonly Tensor[]): Promise<Float32Array[]> {
  const bufs = await gpu.readRanges(
    ts.map((t) => ({ buffer: t.buffer, byteOffset: 0, byteLength: t.byteLength })),
  );
  return bufs.map((b) => new Float32Array(b));
}

describe('a split weight: the parts', () => {
  it('whole rows per part, each within the limit, the last shorter; over the limit by one row it is refused', async () => {
    const gpu = await testGpu();
    const before = gpu.liveBuffers;
    for (const dtype of WEIGHT_DTYPES) {
      const K = K_OF[dtype];
      const max = byteSize([23, K], dtype);
      expect(rowsPerPart(dtype, N, K, max), dtype).toBe(23);
      expect(rowsPerPart(dtype, N, K, max - 1), dtype).toBe(22);
      expect(rowsPerPart(dtype, N, K, byteSize([N, K], dtype)), dtype).toBe(N);
      const w = uploadWeightSplit(gpu, dtype, weightData(dtype, N, K, 1), N, K, 'w', max);
      expect(
        w.parts?.map((p) => [p.row0, p.rows]),
        dtype,
      ).toEqual([
        [0, 23],
        [23, 23],
        [46, 23],
        [69, 1],
      ]);
      for (const p of w.parts!) {
        expect(p.tensor.byteLength).toBeLessThanOrEqual(max);
        expect(p.tensor.byteLength).toBe(byteSize([p.rows, K], dtype));
        expect(p.tensor.dtype).toBe(dtype);
      }
      expect(w.shape).toEqual([N, K]);
      expect(() => w.buffer).toThrow(expect.objectContaining({ code: 'BAD_ARGUMENT' }) as EngineError);
      new GpuBackend(gpu).destroy(w);
      const row = byteSize([1, K], dtype);
      expect(() => uploadWeightSplit(gpu, dtype, weightData(dtype, N, K, 1), N, K, 'big', row - 1)).toThrow(
        expect.objectContaining({ code: 'LIMIT_EXCEEDED', message: expect.stringMatching(/"big".*one row/) }),
      );
    }
    expect(gpu.liveBuffers).toEqual(before);
  });

  it('GpuBackend.weight splits by the device limit; read joins an f32 split weight', async () => {
    const gpu = await Gpu.create(await nodeGpu(), { limits: { maxStorageBufferBindingSize: 4096 } });
    const be = new GpuBackend(gpu);
    const w = randArray(Float32Array, 70 * 24, 7); // 6,720 bytes: 42 + 28 rows
    const t = be.weight('f32', [70, 24], w, 'w');
    expect(t.parts?.map((p) => p.rows)).toEqual([42, 28]);
    expect(Array.from(await be.read(t))).toEqual(Array.from(w));
    const q = be.weight('q8_0', [70, 64], randArray(Float32Array, 70 * 64, 8), 'q');
    expect(q.parts?.map((p) => p.rows)).toEqual([60, 10]); // 68 bytes a row, scales padded to a word
    const small = be.weight('q4_0', [70, 64], randArray(Float32Array, 70 * 64, 9), 's');
    expect(small.parts).toBeUndefined(); // 2,520 bytes: one buffer
    for (const x of [t, q, small]) be.destroy(x);
    expect(gpu.liveBuffers.count).toBe(0);
    gpu.destroy();
  });
});

describe('loadLlama on a small binding limit', () => {
  it("stories260K on 64 KiB per binding: the 128 KiB embedding is split, llama2.c's greedy text", async () => {
    const { config, weights, tokenizer } = stories260K();
    const gpu = await Gpu.create(await nodeGpu(), { limits: { maxStorageBufferBindingSize: 65536 } });
    const model = loadLlama(new GpuBackend(gpu), config, weights);
    try {
      expect(model.tokenEmbedding.parts?.map((p) => p.rows)).toEqual([256, 256]);
      // the runner binds (maxRows × 512) logits whole: 8 rows fit 64 KiB
      const runner = new LlamaRunner(model, { slots: 1, maxT: 80, maxRows: 8 });
      try {
        const res = await generate(runner, tokenizer, [tokenizer.encode('', true, false)], {
          steps: 80,
          temperature: 0,
          topp: 0.9,
          seed: 42,
          stopTokens: [tokenizer.bos],
        });
        expect(res.texts[0]!.length).toBeGreaterThan(100);
        expect(EXPECTED.greedy_200.startsWith(res.texts[0]!)).toBe(true); // its first 80 tokens
      } finally {
        runner.destroy();
      }
    } finally {
      destroyLlama(model);
      gpu.destroy();
    }
  });

  it('a model with a ROW beyond the binding limit is refused before anything is allocated', async () => {
    // 128 bytes per binding: one 64-value f32 row of tok_embeddings is 256 bytes
    const { config, weights } = stories260K();
    const gpu = await Gpu.create(await nodeGpu(), { limits: { maxStorageBufferBindingSize: 128 } });
    const before = gpu.liveBuffers;
    expect(() => loadLlama(new GpuBackend(gpu), config, weights)).toThrow(
      expect.objectContaining({
        code: 'LIMIT_EXCEEDED',
        message: expect.stringMatching(/One row of .*tok_embeddings.*256 B.*128 B.*smaller model/),
      }),
    );
    expect(gpu.liveBuffers).toEqual(before);
    gpu.destroy();
  });
});

describe('matmul with a split weight = the unsplit matmul', () => {
  for (const dtype of WEIGHT_DTYPES) {
    it(dtype, async () => {
      const gpu = await testGpu();
      const K = K_OF[dtype];
      const data = weightData(dtype, N, K, 1);
      const tol = TOL.matmul!;
      await gpu.checked(async () => {
        const whole = uploadWeightAny(gpu, dtype, data, N, K, 'whole');
        const splits = [24, 23].map((r) =>
          uploadWeightSplit(gpu, dtype, data, N, K, `split${r}`, byteSize([r, K], dtype)),
        );
        expect(splits.map((s) => s.parts!.map((p) => p.rows))).toEqual([
          [24, 24, 22],
          [23, 23, 23, 1],
        ]);
        const made: Tensor[] = [];
        const t = (shape: number[], v: Float32Array, label: string) => {
          const r = gpu.fromData(shape, v, label);
          made.push(r);
          return r;
        };
        for (const B of BATCHES) {
          const x = t([B, K], randArray(Float32Array, B * K, 2), 'x');
          const dout = t([B, N], randArray(Float32Array, B * N, 3), 'dout');
          const prevOut = randArray(Float32Array, B * N, 4);
          const prevDinp = randArray(Float32Array, B * K, 5);
          /** Every forward and input-gradient call, on weight `w`, into fresh outputs. */
          const calls = (w: Tensor): [string, Tensor][] => {
            const res: [string, Tensor][] = [];
            const fwd = (what: string, acc: boolean, f: (o: Tensor) => void) => {
              const o = t([B, N], acc ? prevOut : new Float32Array(B * N).fill(NaN), what);
              f(o);
              res.push([what, o]);
            };
            const bwd = (what: string, acc: boolean, f: (o: Tensor) => void) => {
              const o = t([B, K], acc ? prevDinp : new Float32Array(B * K).fill(NaN), what);
              f(o);
              res.push([what, o]);
            };
            fwd('forward', false, (o) => mm.matmulForward(gpu, o, x, w, B, K, N));
            fwd('forward acc', true, (o) => mm.matmulForward(gpu, o, x, w, B, K, N, true));
            fwd('gemv', false, (o) => mm.matmulForwardGemv(gpu, o, x, w, B, K, N));
            fwd('gemv acc', true, (o) => mm.matmulForwardGemv(gpu, o, x, w, B, K, N, true));
            for (const v of ['tiled', 'blocked'] as const) {
              fwd(v, false, (o) => mm.matmulForwardTiled(gpu, o, x, w, B, K, N, false, v));
              fwd(`${v} acc`, true, (o) => mm.matmulForwardTiled(gpu, o, x, w, B, K, N, true, v));
              bwd(`backward ${v}`, false, (o) => mm.matmulBackwardInput(gpu, o, dout, w, B, K, N, false, v));
              bwd(`backward ${v} acc`, true, (o) =>
                mm.matmulBackwardInput(gpu, o, dout, w, B, K, N, true, v),
              );
            }
            return res;
          };
          const want = calls(whole);
          const got = splits.map(calls);
          const all = await readAll(
            gpu,
            [...want, ...got.flat()].map(([, o]) => o),
          );
          const n = want.length;
          got.forEach((g, s) =>
            g.forEach(([what], i) => {
              const a = all[n * (s + 1) + i]!,
                e = all[i]!;
              const tag = `${dtype} split ${s} B=${B} ${what}`;
              expect(a.some(Number.isNaN), tag).toBe(false);
              if (what.startsWith('backward')) checkOp(tag, a, e, tol);
              else expect(firstDiff(a, e), tag).toBe(-1);
            }),
          );
          for (const m of made.splice(0)) gpu.destroyBuffer(m.buffer);
        }
        const be = new GpuBackend(gpu);
        for (const w of [whole, ...splits]) be.destroy(w);
      });
    });
  }

  it('a split weight cannot be trained: matmulBackwardWeight refuses it', async () => {
    const gpu = await testGpu();
    const w = uploadWeightSplit(gpu, 'f32', randArray(Float32Array, N * 8, 1), N, 8, 'w', 1024);
    expect(() => mm.matmulBackwardWeight(gpu, w, w, w, 1, 8, N)).toThrow(
      expect.objectContaining({ code: 'BAD_ARGUMENT', message: expect.stringMatching(/"w" is split/) }),
    );
    new GpuBackend(gpu).destroy(w);
  });
});

describe('the embedding gather from a split table = the CPU reference', () => {
  for (const dtype of ['f32', 'q8_0', 'q4_0'] as const) {
    it(dtype, async () => {
      const gpu = await testGpu();
      const V = N,
        C = 64;
      const data = weightData(dtype, V, C, 11);
      const table =
        dtype === 'f32' ? (data as Float32Array) : dequantizeWeight(dtype, data as Uint8Array, V, C);
      // every part's first and last row, and random ones
      const r = rng(12);
      const tokens = Uint32Array.from([
        0,
        23,
        24,
        47,
        48,
        69,
        22,
        46,
        45,
        69,
        0,
        ...Array.from({ length: 26 }, () => Math.floor(r() * V)),
      ]);
      const T = tokens.length;
      const expected = new Float32Array(T * C);
      ref.embeddingForward(expected, tokens, table, T, C);
      await gpu.checked(async () => {
        const be = new GpuBackend(gpu);
        for (const per of [24, 23]) {
          const wte = uploadWeightSplit(gpu, dtype, data, V, C, 'wte', byteSize([per, C], dtype));
          expect(wte.parts!.length).toBe(per === 24 ? 3 : 4);
          const tt = gpu.fromData([T], tokens, 'tokens');
          const out = gpu.fromData([T, C], new Float32Array(T * C).fill(NaN), 'out');
          emb.embeddingForward(gpu, out, tt, wte, T, C);
          const got = await gpu.read(out);
          expect(firstDiff(got, expected), `${dtype} ${per} rows per part`).toBe(-1);
          for (const x of [wte, tt, out]) be.destroy(x);
        }
      });
    });
  }

  it('a split table has no gradient; a K-quant table has no gather, split or not', async () => {
    const gpu = await testGpu();
    const be = new GpuBackend(gpu);
    const wte = uploadWeightSplit(gpu, 'f32', randArray(Float32Array, N * 8, 1), N, 8, 'wte', 1024);
    expect(() => emb.embeddingBackward(gpu, wte, wte, wte, 1, 8, N)).toThrow(
      expect.objectContaining({ code: 'BAD_ARGUMENT', message: expect.stringMatching(/"wte" is split/) }),
    );
    const k = uploadWeightSplit(gpu, 'q4_k', weightData('q4_k', 8, 256, 2), 8, 256, 'k', 600);
    expect(k.parts!.length).toBe(2);
    const tok = gpu.fromData([1], new Uint32Array([0]), 'tok');
    const out = gpu.tensor([1, 256], 'out');
    expect(() => emb.embeddingForward(gpu, out, tok, k, 1, 256)).toThrow(
      expect.objectContaining({ code: 'BAD_ARGUMENT' }) as EngineError,
    );
    for (const x of [wte, k, tok, out]) be.destroy(x);
  });
});

describe('a whole model on a device that binds 12 KiB = the same model unsplit', () => {
  // f32 embedding 80 KiB (7 parts), w1/w3 48 KiB, w2 48 KiB, wq/wo 16 KiB: every matrix is split.
  // The runner binds (maxRows × V) logits and (maxRows × H) activations whole: 8 rows fit.
  const base: LlamaConfig = {
    dim: 64,
    hiddenDim: 192,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    vocabSize: 320,
    maxSeqLen: 16,
    ropeTheta: 10000,
    normEps: 1e-5,
    sharedClassifier: true,
  };
  const LIMIT = 12 * 1024;
  const PROMPT = [1, 300, 17, 64, 255, 5, 319, 42];
  let limited: Promise<Gpu> | undefined;
  const limitedGpu = () =>
    (limited ??= (async () =>
      Gpu.create(await nodeGpu(), { limits: { maxStorageBufferBindingSize: LIMIT } }))());

  /** The prompt's logits, then 6 greedy tokens with each step's logits. */
  async function greedy(model: LlamaModel<Tensor>): Promise<{ logits: Float32Array[]; tokens: number[] }> {
    const runner = new LlamaRunner(model, { slots: 1, maxT: 16, maxRows: 8 });
    try {
      const logits = [
        await runner.forward(
          PROMPT.map((token, pos) => ({ slot: 0, pos, token })),
          [0, 3, 7],
        ),
      ];
      const V = model.config.vocabSize;
      const tokens: number[] = [];
      let last = logits[0]!.subarray(2 * V);
      for (let pos = PROMPT.length; pos < PROMPT.length + 6; pos++) {
        let best = 0;
        for (let i = 1; i < V; i++) if (last[i]! > last[best]!) best = i;
        tokens.push(best);
        last = await runner.forward([{ slot: 0, pos, token: best }], [0]);
        logits.push(last);
      }
      return { logits, tokens };
    } finally {
      runner.destroy();
    }
  }

  const cases: [string, DType, boolean][] = [
    ['f32, tied classifier (the classifier is the split embedding)', 'f32', true],
    ['q8_0 matrices, untied classifier', 'q8_0', false],
  ];
  for (const [name, matrices, tied] of cases) {
    it(`logits and greedy tokens: ${name}`, async () => {
      const config = { ...base, sharedClassifier: tied };
      const weights = randomLlamaWeights(config, 21);
      const gpu = await limitedGpu();
      const be = new GpuBackend(gpu);
      const before = gpu.liveBuffers;
      const split = loadLlama(be, config, weights, { matrices });
      const whole = loadLlama(new GpuBackend(await testGpu()), config, weights, { matrices });
      try {
        expect(split.tokenEmbedding.parts?.length).toBe(7);
        expect(split.layers[1]!.w2.parts?.length).toBeGreaterThanOrEqual(2);
        expect(whole.tokenEmbedding.parts).toBeUndefined();
        const got = await gpu.checked(() => greedy(split));
        const want = await greedy(whole);
        expect(got.tokens).toEqual(want.tokens);
        got.logits.forEach((l, i) => expect(firstDiff(l, want.logits[i]!), `step ${i}`).toBe(-1));
        expect(Math.max(...want.logits[0]!) - Math.min(...want.logits[0]!)).toBeGreaterThan(1); // not flat
      } finally {
        destroyLlama(split);
        destroyLlama(whole);
      }
      gpu.pool.trim(); // the parts' scratch outputs wait in the pool
      expect(gpu.liveBuffers).toEqual(before);
    });
  }

  it('a LoRA step: the gradients through split weights match', async () => {
    const config = base;
    const weights = randomLlamaWeights(config, 22);
    const V = config.vocabSize,
      T = PROMPT.length;
    const g = randArray(Float32Array, T * V, 23); // dL/dlogits
    const step = async (be: GpuBackend): Promise<Float32Array[]> => {
      const model = loadLlama(be, config, weights);
      const lora = createLora(be, config, { rank: 4, alpha: 8, dropout: 0, targets: ['q', 'v', 'down'] }, 5);
      // B = 0 would zero dA: give B values so that every gradient flows
      for (const p of lora.params)
        if (p.name.endsWith('.B'))
          be.write(p.value, randArray(Float32Array, p.value.shape[0]! * p.value.shape[1]!, 6));
      const tape = new Tape(be);
      const batch = {
        B: 1,
        T,
        tokens: be.fromData([T], Uint32Array.from(PROMPT), 'tokens'),
        targets: be.fromData([T], Uint32Array.from(PROMPT), 'targets'),
        weights: be.fromData([T], new Float32Array(T).fill(1 / T), 'w'),
        positions: be.fromData([T], Uint32Array.from(PROMPT.keys()), 'pos'),
      };
      try {
        const logits = llamaForward(tape, model, batch, loraHook(tape, lora, 0, true));
        logits.grad = tape.alloc([T, V], 'dlogits');
        be.write(logits.grad, g);
        tape.backward();
        return await be.readMany([logits.t, ...lora.params.map((p) => p.grad)]);
      } finally {
        tape.release();
        for (const t of [batch.tokens, batch.targets, batch.weights, batch.positions]) be.destroy(t);
        destroyLora(be, lora);
        destroyLlama(model);
      }
    };
    const gpu = await limitedGpu();
    const got = await gpu.checked(() => step(new GpuBackend(gpu)));
    const want = await step(new GpuBackend(await testGpu()));
    expect(firstDiff(got[0]!, want[0]!), 'logits').toBe(-1);
    for (let i = 1; i < want.length; i++) {
      expect(want[i]!.some((v) => v !== 0)).toBe(true);
      checkOp(`lora grad ${i}`, got[i]!, want[i]!, TOL.split_lora_grad!);
    }
  });
});
