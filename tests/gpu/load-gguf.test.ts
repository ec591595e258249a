// loadLlamaGguf: a GGUF LLaMA streamed onto a backend in the file's own types. Weights on the CPU
// backend equal the file's dequantized values exactly (requantized tables: their q8_0/q4_0 values);
// on the GPU the logits equal the same values loaded as f32 through loadLlama; GGUF's q/k rows need
// no permutation (a file converted the way llama.cpp converts a Hugging Face checkpoint gives the
// logits of our f32 path); progress, abort, a truncated download and the binding limit leave no
// tensor behind; on a GPU with a small binding limit the tensors are split by rows (same logits).
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../../src/engine/backend/cpu.ts';
import { GpuBackend } from '../../src/engine/backend/gpu.ts';
import { Gpu } from '../../src/engine/gpu/gpu.ts';
import { nodeGpu } from '../../src/engine/gpu/node.ts';
import type { Tensor } from '../../src/engine/gpu/tensor.ts';
import type { Backend, BackendTensor } from '../../src/engine/backend/types.ts';
import { EngineError } from '../../src/engine/errors.ts';
import { fromBytes, fromUrl, type ByteSource } from '../../src/engine/io/bytesource.ts';
import {
  readGgufHeader,
  readTensorBytes,
  type GgufFile,
  type SupportedGgmlType,
} from '../../src/engine/io/gguf.ts';
import { readLlamaF32 } from '../../src/engine/io/gguf-llama.ts';
import {
  ggufLoadPlan,
  ggufPlanWeightTypes,
  loadLlamaGguf,
  type GgufLoadOptions,
  type LoadProgress,
} from '../../src/engine/io/load-gguf.ts';
import { LlamaRunner } from '../../src/engine/infer/runner.ts';
import { headSize, kvDim, type LlamaConfig } from '../../src/engine/model/config.ts';
import { destroyLlama, loadLlama, type LlamaModel } from '../../src/engine/model/llama.ts';
import { permuteRopeRows } from '../../src/engine/model/rope-order.ts';
import type { LlamaWeightsF32, WeightName } from '../../src/engine/model/weights.ts';
import { planMemory } from '../../src/engine/plan.ts';
import { WEBGPU_DEFAULT_LIMITS } from '../../src/engine/plan/types.ts';
import { dequantize, packForGpu, quantize, type QuantDType } from '../../src/engine/quant.ts';
import { llamaGguf } from '../../tools/gguf-write.ts';
import { randomLlamaWeights } from '../../tools/mlc-write.ts';
import { checkOp } from '../helpers/checkop.ts';
import { cpuWeights } from '../helpers/backends.ts';
import { testGpu } from '../helpers/gpu.ts';
import { logitsOf } from '../helpers/runner.ts';

// K of every matrix a multiple of 256 (K-quant super-blocks); GQA (4 query heads, 2 kv heads)
const CONFIG: LlamaConfig = {
  dim: 256,
  hiddenDim: 512,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  vocabSize: 96,
  maxSeqLen: 32,
  ropeTheta: 10000,
  normEps: 1e-5,
  sharedClassifier: false,
};
const PROMPT = [1, 17, 5, 90, 33, 33, 2, 64];

interface Built {
  bytes: Uint8Array;
  src: ByteSource;
  file: GgufFile;
}

async function build(
  type: SupportedGgmlType,
  config = CONFIG,
  weights = randomLlamaWeights(config, 3),
): Promise<Built> {
  const bytes = llamaGguf(config, weights, type);
  const src = fromBytes(bytes, `tiny-${type}.gguf`);
  return { bytes, src, file: await readGgufHeader(src) };
}

/**
 * What the loaded model must hold, in f32: the file's values dequantized, with each tensor the
 * loader requantizes replaced by its requantized values.
 */
async function expectedWeights(b: Built, opts: GgufLoadOptions = {}): Promise<LlamaWeightsF32> {
  const { weights } = await readLlamaF32(b.file, b.src);
  const w = { ...weights };
  for (const t of ggufLoadPlan(b.file, opts)) {
    if (t.how !== 'requantize') continue;
    const n = t.info.nElements;
    const off = (t.layer ?? 0) * n;
    const v = w[t.weight].subarray(off, off + n);
    const q = t.dtype as QuantDType;
    const copy = new Float32Array(w[t.weight]);
    copy.set(dequantize(q, quantize(q, v), n), off);
    w[t.weight] = copy;
  }
  if (b.file.tensorsByName.has('output.weight') === false) w.wcls = w.tokenEmbedding;
  return w;
}

const gpuBackend = async () => new GpuBackend(await testGpu());

/** A backend that records what is alive (weights and data tensors), forwarding to `be`. */
function counting<T extends BackendTensor>(be: Backend<T>, maxTensorBytes?: number) {
  const live = new Set<T>();
  let made = 0;
  const w = Object.create(be) as Backend<T>;
  Object.assign(w, {
    weight(...a: Parameters<Backend<T>['weight']>) {
      const t = be.weight(...a);
      live.add(t);
      made++;
      return t;
    },
    fromData(...a: Parameters<Backend<T>['fromData']>) {
      const t = be.fromData(...a);
      live.add(t);
      made++;
      return t;
    },
    destroy(t: T) {
      live.delete(t);
      be.destroy(t);
    },
  });
  if (maxTensorBytes !== undefined) Object.defineProperty(w, 'maxTensorBytes', { value: maxTensorBytes });
  return { be: w, live, made: () => made };
}

/** An HTTP server (for fromUrl) whose copy of the file ends at `cut` although it reports `bytes.length`. */
function truncatedServer(bytes: Uint8Array, cut: number): typeof fetch {
  return (async (_url: string | URL | Request, init?: RequestInit) => {
    const range = /bytes=(\d+)-(\d+)/.exec(String((init?.headers as Record<string, string>).Range));
    const a = Number(range![1]),
      b = Number(range![2]);
    if (a >= cut) return new Response(null, { status: 416 });
    const end = Math.min(b + 1, cut);
    return new Response(bytes.slice(a, end), {
      status: 206,
      headers: { 'Content-Range': `bytes ${a}-${end - 1}/${bytes.length}` },
    });
  }) as typeof fetch;
}

const CPU_CASES: [SupportedGgmlType, GgufLoadOptions, Record<string, string>][] = [
  ['Q4_0', {}, { tok: 'q4_0', wq: 'q4_0', w2: 'q4_0', out: 'q4_0' }],
  ['Q8_0', {}, { tok: 'q8_0', wq: 'q8_0', w2: 'q8_0', out: 'q8_0' }],
  ['F16', {}, { tok: 'f32', wq: 'f32', w2: 'f32', out: 'f32' }],
  ['F32', { floatMatrices: 'q8_0' }, { tok: 'f32', wq: 'q8_0', w2: 'q8_0', out: 'q8_0' }],
  ['F16', { floatMatrices: 'q4_0', embedding: 'q4_0' }, { tok: 'q4_0', wq: 'q4_0', w2: 'q4_0', out: 'q4_0' }],
  ['Q4_K', { kQuants: 'q8_0' }, { tok: 'q8_0', wq: 'q8_0', w2: 'q8_0', out: 'q8_0' }],
  ['Q6_K', { kQuants: 'q8_0' }, { tok: 'q8_0', wq: 'q8_0', w2: 'q8_0', out: 'q8_0' }],
  ['Q4_K', {}, { tok: 'q8_0', wq: 'q4_k', w2: 'q4_k', out: 'q4_k' }],
  ['Q6_K', {}, { tok: 'q8_0', wq: 'q6_k', w2: 'q6_k', out: 'q6_k' }],
];

describe('loadLlamaGguf: what lands on the backend', () => {
  for (const [type, opts, dtypes] of CPU_CASES) {
    it(`${type} ${JSON.stringify(opts)}: planned types; CPU backend holds exactly the file's values`, async () => {
      const b = await build(type);
      const plan = ggufLoadPlan(b.file, opts);
      const dt = (label: string) => plan.find((t) => t.label === label)!.dtype;
      expect({
        tok: dt('tok_embeddings'),
        wq: dt('layers.1.wq'),
        w2: dt('layers.0.w2'),
        out: dt('output'),
      }).toEqual(dtypes);
      expect(plan.filter((t) => t.shape.length === 1).every((t) => t.dtype === 'f32')).toBe(true);
      const model = await loadLlamaGguf(new CpuBackend(), b.file, b.src, opts);
      const got = cpuWeights(model);
      const want = await expectedWeights(b, opts);
      for (const k of Object.keys(got) as WeightName[]) {
        expect(got[k].length, k).toBe(want[k].length);
        expect(
          got[k].every((v, i) => Object.is(v, want[k][i])),
          k,
        ).toBe(true);
      }
      expect(model.tensors.length).toBe(3 + 9 * CONFIG.nLayers);
    });
  }

  it('loadLlama (f32 weights from the heap) refuses the file-only types', () => {
    const w = randomLlamaWeights(CONFIG, 3);
    for (const matrices of ['q4_k', 'q6_k', 'q4f16_1'] as const) {
      expect(() => loadLlama(new CpuBackend(), CONFIG, w, { matrices })).toThrow(
        expect.objectContaining({ code: 'BAD_ARGUMENT' }) as EngineError,
      );
    }
  });

  it('q4_0 blocks go to the GPU as they are: the buffers hold packForGpu of the file bytes', async () => {
    const b = await build('Q4_0');
    const be = await gpuBackend();
    const model = await loadLlamaGguf(be, b.file, b.src);
    try {
      for (const [t, name, N, K] of [
        [model.tokenEmbedding, 'token_embd.weight', CONFIG.vocabSize, CONFIG.dim],
        [model.layers[1]!.w2, 'blk.1.ffn_down.weight', CONFIG.dim, CONFIG.hiddenDim],
        [model.wcls, 'output.weight', CONFIG.vocabSize, CONFIG.dim],
      ] as const) {
        expect(t.dtype).toBe('q4_0');
        const fileBytes = await readTensorBytes(b.file, b.src, b.file.tensorsByName.get(name)!);
        const onGpu = new Uint8Array(await be.gpu.readBytes(t, 0, t.byteLength));
        expect(Buffer.from(onGpu).equals(Buffer.from(packForGpu('q4_0', fileBytes, N, K).buffer))).toBe(true);
      }
    } finally {
      destroyLlama(model);
    }
  });
});

describe('loadLlamaGguf on the GPU: logits equal the same values loaded as f32', () => {
  const cases: [SupportedGgmlType, GgufLoadOptions][] = [
    ['Q4_0', {}],
    ['Q8_0', {}],
    ['F16', { floatMatrices: 'q8_0' }],
    ['Q6_K', { kQuants: 'q8_0' }],
    ['Q4_K', {}],
    ['Q6_K', {}],
  ];
  for (const [type, opts] of cases) {
    it(`${type} ${JSON.stringify(opts)}`, async () => {
      const b = await build(type);
      const be = await gpuBackend();
      const model = await loadLlamaGguf(be, b.file, b.src, opts);
      const ref = loadLlama(be, CONFIG, await expectedWeights(b, opts));
      try {
        const got = await logitsOf(model, PROMPT);
        const want = await logitsOf(ref, PROMPT);
        checkOp('model_logits', got, want);
        expect(Math.max(...want) - Math.min(...want)).toBeGreaterThan(1); // not flat
      } finally {
        destroyLlama(model);
        destroyLlama(ref);
      }
    });
  }

  it('tied classifier: one quantized table serves the embedding and the classifier', async () => {
    const config = { ...CONFIG, sharedClassifier: true };
    const w = randomLlamaWeights(config, 5);
    const b = await build('Q8_0', config, w);
    const be = await gpuBackend();
    const model = await loadLlamaGguf(be, b.file, b.src);
    const ref = loadLlama(be, config, await expectedWeights(b));
    try {
      expect(model.wcls).toBe(model.tokenEmbedding);
      expect(model.tokenEmbedding.dtype).toBe('q8_0');
      expect(model.tensors.length).toBe(2 + 9 * config.nLayers);
      checkOp('model_logits', await logitsOf(model, PROMPT), await logitsOf(ref, PROMPT));
    } finally {
      destroyLlama(model);
      destroyLlama(ref);
    }
  });
});

describe('GGUF q/k rows are in our RoPE order', () => {
  /**
   * llama.cpp's converter (convert_hf_to_gguf.py, LlamaModel.permute) on a Hugging Face q_proj /
   * k_proj: w.reshape(n_head, 2, rows / n_head / 2, cols).swapaxes(1, 2).reshape(rows, cols).
   * Written from those numpy semantics: element [h, a, b] of the swapped view is [h, b, a] of the
   * reshaped one, i.e. GGUF row h·hs + 2a + b = HF row h·hs + b·hs/2 + a.
   */
  function llamaCppPermute(w: Float32Array, nHead: number, rows: number): Float32Array {
    const cols = w.length / rows;
    const hs = rows / nHead;
    const out = new Float32Array(w.length);
    for (let h = 0; h < nHead; h++)
      for (let a = 0; a < hs / 2; a++)
        for (let b = 0; b < 2; b++) {
          const src = h * hs + b * (hs / 2) + a;
          out.set(w.subarray(src * cols, (src + 1) * cols), (h * hs + 2 * a + b) * cols);
        }
    return out;
  }

  /** Per layer: f(layer's rows) for wq (NH heads) and wk (NKV heads). */
  function mapQK(
    w: LlamaWeightsF32,
    f: (m: Float32Array, heads: number, rows: number) => Float32Array,
  ): LlamaWeightsF32 {
    const C = CONFIG.dim,
      KV = kvDim(CONFIG);
    const out = { ...w, wq: new Float32Array(w.wq), wk: new Float32Array(w.wk) };
    for (let l = 0; l < CONFIG.nLayers; l++) {
      out.wq.set(f(w.wq.subarray(l * C * C, (l + 1) * C * C), CONFIG.nHeads, C), l * C * C);
      out.wk.set(f(w.wk.subarray(l * KV * C, (l + 1) * KV * C), CONFIG.nKvHeads, KV), l * KV * C);
    }
    return out;
  }

  it('a GGUF converted from an HF checkpoint gives the logits of our f32 path; unconverted rows do not', async () => {
    // F32 files: both paths hold exactly the same numbers
    const hf = randomLlamaWeights(CONFIG, 11); // an "HF checkpoint": q/k rows in rotate_half order
    const hs = headSize(CONFIG);
    const ours = mapQK(hf, (m, heads) => permuteRopeRows(m, heads, hs, false));
    const converted = await build('F32', CONFIG, mapQK(hf, llamaCppPermute));
    const unconverted = await build('F32', CONFIG, hf);

    const be = new CpuBackend();
    const want = await logitsOf(loadLlama(be, CONFIG, ours), PROMPT);
    const got = await logitsOf(await loadLlamaGguf(be, converted.file, converted.src), PROMPT);
    expect(Array.from(got)).toEqual(Array.from(want)); // same values, same reference ops: bit for bit
    const wrong = await logitsOf(await loadLlamaGguf(be, unconverted.file, unconverted.src), PROMPT);
    const V = CONFIG.vocabSize;
    // position 0 has no rotation, so only later positions can tell the orders apart
    expect(Array.from(wrong.subarray(0, V))).toEqual(Array.from(want.subarray(0, V)));
    let maxDiff = 0;
    for (let i = V; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(wrong[i]! - want[i]!));
    expect(maxDiff).toBeGreaterThan(1e-2);
  });
});

describe('loadLlamaGguf: progress, abort, failures leave nothing behind', () => {
  it('progress: per chunk, monotone, ending at the sum of the tensor sizes; tensors in file order', async () => {
    const b = await build('Q4_0');
    const seen: LoadProgress[] = [];
    const model = await loadLlamaGguf(new CpuBackend(), b.file, b.src, {
      chunkBytes: 4096,
      onProgress: (p) => seen.push(p),
    });
    const total = b.file.tensors.reduce((a, t) => a + t.byteSize, 0);
    expect(seen[0]).toEqual({ bytesDone: 0, bytesTotal: total, tensor: 'token_embd.weight' });
    expect(seen.at(-1)).toEqual({ bytesDone: total, bytesTotal: total, tensor: 'blk.1.ffn_down.weight' });
    for (let i = 1; i < seen.length; i++) {
      expect(seen[i]!.bytesDone).toBeGreaterThan(seen[i - 1]!.bytesDone);
      expect(seen[i]!.bytesDone - seen[i - 1]!.bytesDone).toBeLessThanOrEqual(4096);
    }
    const order = [...new Set(seen.map((p) => p.tensor))];
    expect(order).toEqual(b.file.tensors.map((t) => t.name));
    // the token embedding (96 rows × 144 bytes) came in chunks of 28 rows: 4 reads
    expect(seen.filter((p) => p.tensor === 'token_embd.weight').length).toBe(1 + 4);
    destroyLlama(model);
  });

  it('abort mid-load: AbortError, and the GPU holds no buffer more than before', async () => {
    const b = await build('Q4_0');
    const be = await gpuBackend();
    const before = be.gpu.liveBuffers;
    const ac = new AbortController();
    let reads = 0;
    const err = await loadLlamaGguf(be, b.file, b.src, {
      chunkBytes: 8192,
      signal: ac.signal,
      onProgress: (p) => {
        if (p.tensor === 'blk.1.attn_k.weight' && ++reads === 1) ac.abort();
      },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DOMException);
    expect((err as DOMException).name).toBe('AbortError');
    expect(reads).toBe(1);
    expect(be.gpu.liveBuffers).toEqual(before);
  });

  it('a download cut short mid-way: TRUNCATED_FILE, and nothing left allocated (GPU and a counting backend)', async () => {
    const b = await build('Q4_0');
    const cut = b.file.tensorsByName.get('blk.1.attn_v.weight')!.fileOffset + 100;
    const src = await fromUrl('https://models.example/tiny.gguf', truncatedServer(b.bytes, cut));
    const file = await readGgufHeader(src);
    expect(file.size).toBe(b.bytes.length);

    const gpu = await gpuBackend();
    const before = gpu.gpu.liveBuffers;
    const c = counting(gpu);
    const err = await loadLlamaGguf(c.be, file, src).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineError);
    expect((err as EngineError).code).toBe('TRUNCATED_FILE');
    expect(c.made()).toBeGreaterThan(10); // it failed mid-load, not at the start
    expect(c.live.size).toBe(0);
    expect(gpu.gpu.liveBuffers).toEqual(before);
  });

  it('a matrix over the binding limit is split; one whose row is over is refused before anything is allocated', async () => {
    const b = await build('F16');
    const row = 4 * CONFIG.hiddenDim; // a row of the f32 w2 (the longest f32 rows: 2 KiB)
    const c = counting(new CpuBackend(), row - 4);
    const err = await loadLlamaGguf(c.be, b.file, b.src).catch((e: unknown) => e);
    expect((err as EngineError).code).toBe('LIMIT_EXCEEDED');
    expect((err as EngineError).message).toMatch(
      /One row of .*layers\.0\.w2 \(blk\.0\.ffn_down\.weight, f32\)/,
    );
    expect((err as EngineError).message).toMatch(/floatMatrices/);
    expect(c.made()).toBe(0);
    // quantized on load, every row fits (the f32 wq, 256 KiB, would have been split too)
    const m = await loadLlamaGguf(c.be, b.file, b.src, { floatMatrices: 'q8_0' });
    expect(m.layers[0]!.wq.dtype).toBe('f32'); // the CPU backend keeps dequantized values
    expect(c.live.size).toBe(m.tensors.length);
  });

  it('on a GPU that binds less than the whole table: the table and the matrices split by rows, the same logits', async () => {
    const { vocabSize: V, dim: C } = CONFIG;
    const q4 = (V * C * 18) / 32; // the q4_0 table: 13.5 KiB
    const q = await build('Q8_0');
    const gpu = await Gpu.create(await nodeGpu(), { limits: { maxStorageBufferBindingSize: q4 - 1 } });
    const be = new GpuBackend(gpu);
    const whole = new GpuBackend(await testGpu());
    // the runner binds (maxRows × hiddenDim) f32 activations whole: 4 rows fit
    const run = async (m: LlamaModel<Tensor>) => {
      const runner = new LlamaRunner(m, { slots: 1, maxT: PROMPT.length, maxRows: 4 });
      try {
        const rows = PROMPT.map((token, pos) => ({ slot: 0, pos, token }));
        return await runner.forward(
          rows,
          rows.map((_, i) => i),
        );
      } finally {
        runner.destroy();
      }
    };
    const model = await loadLlamaGguf(be, q.file, q.src);
    const ref = await loadLlamaGguf(whole, q.file, q.src, { embedding: 'q4_0' });
    try {
      expect(model.tokenEmbedding.dtype).toBe('q4_0'); // nothing fits whole: the smallest, split
      expect(model.tokenEmbedding.parts?.map((p) => p.rows)).toEqual([95, 1]);
      expect(model.wcls.parts?.length).toBe(2);
      expect(model.layers[0]!.w1.parts?.length).toBeGreaterThan(2);
      expect(ref.tokenEmbedding.parts).toBeUndefined();
      const got = await gpu.checked(() => run(model));
      const want = await run(ref);
      expect(Array.from(got)).toEqual(Array.from(want)); // the same kernels per part: bit for bit
    } finally {
      destroyLlama(model);
      destroyLlama(ref);
      gpu.destroy();
    }
  });

  it("the planner's weight types for a load: planMemory counts exactly the bytes the load allocates", async () => {
    for (const type of ['Q4_0', 'Q4_K', 'F16'] as const) {
      const b = await build(type);
      const plan = ggufLoadPlan(b.file);
      const weights = ggufPlanWeightTypes(plan);
      if (type === 'Q4_K') {
        expect(weights.matrices).toBe('q4_k');
        expect(weights.tensors!['tok_embeddings']).toBe('q8_0');
      }
      const p = planMemory({
        kind: 'inference',
        config: CONFIG,
        weights,
        limits: WEBGPU_DEFAULT_LIMITS,
        sequences: 1,
        context: 8,
      });
      expect(p.items.weights, type).toBe(plan.reduce((a, t) => a + t.bytes, 0));
    }
  });

  it('the embedding takes the first of q8_0, q4_0 that fits one binding', async () => {
    const { vocabSize: V, dim: C } = CONFIG;
    const q8 = (V * C * 34) / 32,
      q4 = (V * C * 18) / 32;
    const k = await build('Q6_K');
    const emb = (b: Built, max: number, o: GgufLoadOptions = {}) =>
      ggufLoadPlan(b.file, o, max).find((t) => t.weight === 'tokenEmbedding')!;
    expect([emb(k, q8).dtype, emb(k, q8).how]).toEqual(['q8_0', 'requantize']);
    expect([emb(k, q8 - 1).dtype, emb(k, q8 - 1).how]).toEqual(['q4_0', 'requantize']);
    const q = await build('Q8_0');
    expect([emb(q, q8).dtype, emb(q, q8).how]).toEqual(['q8_0', 'blocks']);
    expect([emb(q, q8 - 1).dtype, emb(q, q8 - 1).how]).toEqual(['q4_0', 'requantize']);
    expect(emb(q, q4 - 1).dtype).toBe('q4_0'); // nothing fits: the smallest, split by rows
    const f = await build('F16');
    expect(emb(f, 4 * V * C).dtype).toBe('f32');
    expect(emb(f, 4 * V * C - 1).dtype).toBe('q8_0');
    // one q4_0 row (144 bytes) over the limit: refused before anything is allocated
    const c = counting(new CpuBackend(), 143);
    const err = await loadLlamaGguf(c.be, q.file, q.src).catch((e: unknown) => e);
    expect((err as EngineError).code).toBe('LIMIT_EXCEEDED');
    expect((err as EngineError).message).toMatch(/One row of .*tok_embeddings/);
    expect(c.made()).toBe(0);
  });
});
