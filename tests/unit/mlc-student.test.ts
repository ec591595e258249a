// web-llm's MLC build as a big student, without a GPU (src/method/api/mlc-student.ts,
// big-student.ts): a LLaMA-7b-shaped folder (sizes only) is planned exactly as the loader places it
// (q4f16_1 matrices, q4_0 embedding: the GGUF q4_0 figure of docs/planner.md); a small model
// written by our writer is read from a Cache Storage in memory under web-llm's keys (the Cache API
// is the only stand-in): facts, weight types and plan by hand, the tokenizer (tokenizer.json first,
// else tokenizer.model) against sentencepiece's ids, and every refusal as a typed error naming what
// to do; mlcCacheStatus says what the cache holds.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { mlcCacheStatus, mlcModelId, WEBLLM_LLAMA_MODELS } from '../../src/app/lib/mlc-download.ts';
import { EngineError } from '../../src/engine/errors.ts';
import { byteSize } from '../../src/engine/gpu/tensor.ts';
import type { ByteSource } from '../../src/engine/io/bytesource.ts';
import { mlcLoadPlan } from '../../src/engine/io/load-mlc.ts';
import {
  mlcParams,
  mlcGroupsPerRow,
  mlcWordsPerRow,
  openMlc,
  parseMlcManifest,
  webllmModelBase,
  type MlcFolder,
  type MlcRecord,
} from '../../src/engine/io/mlc.ts';
import { kvDim, LLAMA_7B, type LlamaConfig } from '../../src/engine/model/config.ts';
import { WEBGPU_DEFAULT_LIMITS } from '../../src/engine/plan.ts';
import { planBig } from '../../src/method/api/big-student.ts';
import { mlcPlanWeightTypes, openMlcStudent } from '../../src/method/api/mlc-student.ts';
import {
  MemoryCaches,
  MLC_STUDENT_CONFIG as C,
  mlcStudentFiles,
  putMlcFiles,
} from '../helpers/mlc-student.ts';

const GiB = 2 ** 30;
const URL0 = 'https://huggingface.co/mlc-ai/tiny-llama-q4f16_1-MLC';
const BASE0 = `${URL0}/resolve/main/`;
const cases = JSON.parse(readFileSync('tests/fixtures/spm/cases.json', 'utf8')) as {
  encode: { text: string; ids: number[] }[];
};

async function engineError(p: Promise<unknown>): Promise<EngineError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof EngineError) return e;
    throw e;
  }
  throw new Error('expected an EngineError');
}

/** A cache holding the model at `url` (the writer's files, edited by `opts`). */
function cacheWith(url = URL0, opts: Parameters<typeof mlcStudentFiles>[0] = {}) {
  const caches = new MemoryCaches();
  const files = mlcStudentFiles(opts);
  const base = putMlcFiles(caches, url, files);
  return { caches, files, base };
}

/** A manifest for `config` with one tensor per shard and shards that have a size but no bytes. */
function sizedFolder(config: LlamaConfig): MlcFolder {
  const records: { dataPath: string; format: 'raw-shard'; nbytes: number; records: MlcRecord[] }[] = [];
  const add = (name: string, shape: number[], dtype: 'uint32' | 'float16', eb: number) => {
    const nbytes = shape[0]! * (shape[1] ?? 1) * eb;
    records.push({
      dataPath: `params_shard_${records.length}.bin`,
      format: 'raw-shard',
      nbytes,
      records: [{ name, shape, dtype, format: 'f32-to-bf16', nbytes, byteOffset: 0 }],
    });
  };
  for (const p of mlcParams(config)) {
    if (p.kind === 'vector') add(p.name, [p.length], 'float16', 2);
    else {
      add(`${p.base}.q_weight`, [p.rows, mlcWordsPerRow(p.cols)], 'uint32', 4);
      add(`${p.base}.q_scale`, [p.rows, mlcGroupsPerRow(p.cols)], 'float16', 2);
    }
  }
  const chat = {
    model_type: 'llama',
    quantization: 'q4f16_1',
    model_config: {
      hidden_size: config.dim,
      intermediate_size: config.hiddenDim,
      num_attention_heads: config.nHeads,
      num_key_value_heads: config.nKvHeads,
      num_hidden_layers: config.nLayers,
      rms_norm_eps: config.normEps,
      vocab_size: config.vocabSize,
      context_window_size: config.maxSeqLen,
      tensor_parallel_shards: 1,
    },
  };
  const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
  const small = new Map([
    ['mlc-chat-config.json', json(chat)],
    ['tensor-cache.json', json({ metadata: {}, records })],
  ]);
  const sizes = new Map(records.map((s) => [s.dataPath, s.nbytes]));
  return {
    name: 'Llama-2-7b-chat-hf-q4f16_1-MLC',
    open(path): Promise<ByteSource | null> {
      const b = small.get(path);
      const size = b?.length ?? sizes.get(path);
      if (size === undefined) return Promise.resolve(null);
      return Promise.resolve({
        name: path,
        size,
        read: (offset, length) => {
          if (!b) throw new Error(`${path}: no weight is read to plan`);
          return Promise.resolve(b.subarray(offset, offset + length));
        },
      });
    },
  };
}

describe('web-llm’s MLC build as a big student (no GPU)', () => {
  it('Llama-2-7b q4f16_1: planned as the loader places it (= the GGUF q4_0 figure); 16 × 1,024 at 8 GiB → at most 8', async () => {
    const config: LlamaConfig = { ...LLAMA_7B, maxSeqLen: 4096 }; // Llama 2's context
    const model = await openMlc(sizedFolder(config));
    const steps = mlcLoadPlan(model);
    // matrices as MLC stores them (q4f16_1), the embedding repacked to q4_0 for the gather kernel
    expect(steps.find((s) => s.weight === 'wq')!.dtype).toBe('q4f16_1');
    expect(steps.find((s) => s.weight === 'wcls')!.dtype).toBe('q4f16_1');
    expect(steps.find((s) => s.weight === 'tokenEmbedding')!.dtype).toBe('q4_0');
    const weights = mlcPlanWeightTypes(steps);
    expect(weights.matrices).toBe('q4_0'); // q4f16_1 is q4_0's size: 0.5625 bytes per value
    const student = { config, weights, smaller: '' };
    const budget = 8 * GiB;
    const { view, error } = planBig({ ...WEBGPU_DEFAULT_LIMITS }, student, {
      sequences: 16,
      context: 1024,
      memoryBudget: budget,
    });
    // docs/planner.md, "Figures for LLaMA-7b": 32 × 202,375,168 × 18/32 + 2 × 131,072,000 × 18/32 + 65 × 4096 × 4
    const byHand = (32 * 202_375_168 * 18) / 32 + (2 * 131_072_000 * 18) / 32 + 65 * 4096 * 4;
    expect(byHand).toBe(3_791_273_984);
    expect(view.items.weights).toBe(byHand);
    // and what the GPU allocates, tensor by tensor (byteSize of each step; q4f16_1 scales two per u32)
    expect(steps.reduce((a, s) => a + byteSize(s.shape, s.dtype), 0)).toBe(byHand);
    // f16 KV cache: 2 (k, v) · 32 layers · 4096 · 2 B = 0.5 MiB per token per sequence; 16 × 1,024 → 8 GiB
    expect(2 * 32 * kvDim(config) * 2).toBe(0.5 * 2 ** 20);
    expect(view.items.kv).toBe(16 * 1024 * 0.5 * 2 ** 20);
    expect([view.kv, view.verdict, error?.code]).toEqual(['f16', 'refused', 'OUT_OF_MEMORY']);
    // 8 samples: 4 GiB of KV cache + 3.53 GiB of weights + < 0.47 GiB of the rest fits; 9 do not
    expect(view.suggestions[0]).toMatchObject({ kind: 'sequences', sequences: 8 });
    expect(view.error!.message).toMatch(/To fit: at most 8 sequences at 1,024 positions/);
    const eight = planBig({ ...WEBGPU_DEFAULT_LIMITS }, student, {
      sequences: 8,
      context: 1024,
      memoryBudget: budget,
    });
    expect([eight.view.verdict, eight.view.splits]).toEqual(['ok', []]);
  });

  it('a small model from the cache: facts, weight types and the plan by hand', async () => {
    const { caches, files } = cacheWith();
    const s = await openMlcStudent({ mlcUrl: URL0 }, null, caches);
    const f = s.facts();
    const manifest = parseMlcManifest(files.get('tensor-cache.json')!);
    expect(manifest.records.length).toBeGreaterThanOrEqual(3);
    expect(f).toMatchObject({
      base: BASE0,
      id: 'tiny-llama-q4f16_1-MLC',
      quantization: 'q4f16_1',
      manifest: 'tensor-cache.json',
      shards: manifest.records.length,
      fileBytes: manifest.records.reduce((a, r) => a + r.nbytes, 0),
      config: C,
      tokenizer: { file: 'tokenizer.json', tokens: 500, byteFallback: true, bos: 1, eos: 2 },
    });
    expect(s.key).toBe(`mlc:${BASE0}`);
    expect(f.classes.map((c) => c.name)).toEqual([
      'embed_tokens',
      'input_layernorm',
      'qkv_proj: q',
      'qkv_proj: k',
      'qkv_proj: v',
      'o_proj',
      'gate_up_proj: gate',
      'down_proj',
      'gate_up_proj: up',
      'post_attention_layernorm',
      'norm',
      'lm_head',
    ]);
    // q4f16_1 words (K/8 u32 per row) then the f16 scales two per u32: 64 × 64 → 2,048 + 256 bytes
    const q4 = (rows: number, cols: number) => (rows * cols) / 2 + 4 * Math.ceil((rows * cols) / 64);
    const cls = (name: string) => f.classes.find((c) => c.name === name)!;
    expect(cls('qkv_proj: q')).toEqual({
      name: 'qkv_proj: q',
      count: 2,
      file: { q4f16_1: 2 },
      gpu: ['q4f16_1 (as stored)'],
      gpuBytes: 2 * q4(64, 64),
    });
    expect(cls('qkv_proj: k').gpuBytes).toBe(2 * q4(32, 64));
    expect(cls('embed_tokens')).toMatchObject({ gpu: ['q4_0 (repacked)'], gpuBytes: q4(500, 64) });
    // rows of 172 values are no whole groups of 32: down_proj dequantized to f32
    expect(cls('down_proj')).toMatchObject({ gpu: ['f32 (dequantized)'], gpuBytes: 2 * 64 * 172 * 4 });
    expect(cls('input_layernorm')).toMatchObject({
      file: { float16: 2 },
      gpu: ['f32'],
      gpuBytes: 2 * 64 * 4,
    });
    expect(s.weights).toEqual({
      matrices: 'q4_0',
      tensors: expect.objectContaining({
        tok_embeddings: 'q4_0',
        'layers.0.wq': 'q4_0',
        'layers.1.w2': 'f32',
        'layers.1.w3': 'q4_0',
        output: 'q4_0',
        norm: 'f32',
      }) as unknown,
    });
    const weights =
      q4(500, 64) * 2 + // embedding, lm_head
      2 * (q4(64, 64) * 2 + q4(32, 64) * 2 + q4(172, 64) * 2 + 64 * 172 * 4 + 2 * 64 * 4) + // layers
      64 * 4; // final norm
    expect(f.classes.reduce((a, c) => a + c.gpuBytes, 0)).toBe(weights);
    const { view } = planBig({ ...WEBGPU_DEFAULT_LIMITS }, s, {});
    expect([view.sequences, view.context, view.verdict]).toEqual([32, 512, 'ok']);
    expect(view.items.weights).toBe(weights);
    expect(view.items.kv).toBe(2 * 2 * 32 * 512 * 32 * 2); // k, v · layers · m · context · kvDim · f16
    // what a load reads: every record, the scales in f16 (the norms too)
    // q_weight words and f16 scales per row: 64 values → 8 words + 2 scales = 36 B; 172 → 24 + 6 = 108 B
    expect(f.dataBytes).toBe(
      2 * 500 * 36 + // embedding, lm_head
        2 * ((64 + 32 + 32 + 64 + 172 + 172) * 36 + 64 * 108 + 2 * 64 * 2) + // layers: matrices, f16 norms
        64 * 2, // final norm
    );
  });

  it('the tokenizer: tokenizer.json first, else tokenizer.model; sentencepiece’s ids either way', async () => {
    const both = await openMlcStudent({ mlcUrl: URL0 }, null, cacheWith(URL0, { tokenizer: 'both' }).caches);
    const model = await openMlcStudent(
      { mlcUrl: URL0 },
      null,
      cacheWith(URL0, { tokenizer: 'model' }).caches,
    );
    expect(both.facts().tokenizer.file).toBe('tokenizer.json');
    expect(model.facts().tokenizer.file).toBe('tokenizer.model');
    let n = 0;
    for (const c of cases.encode) {
      expect(both.tokenizer.encode(c.text, false, false), c.text).toEqual(c.ids);
      expect(model.tokenizer.encode(c.text, false, false), c.text).toEqual(c.ids);
      n++;
    }
    expect(n).toBe(cases.encode.length);
    expect(n).toBeGreaterThan(100);
  });

  it('the same key reads nothing again; a new key reads the cache again', async () => {
    const { caches } = cacheWith();
    const a = await openMlcStudent({ mlcUrl: URL0, key: 'k1' }, null, caches);
    caches.stores.clear(); // nothing left to read: the same key must not need it
    expect(await openMlcStudent({ mlcUrl: URL0, key: 'k1' }, a, caches)).toBe(a);
    const e = await engineError(openMlcStudent({ mlcUrl: URL0, key: 'k2' }, a, caches));
    expect(e.code).toBe('BAD_ARGUMENT');
  });

  it('refusals: typed errors that say what to do', async () => {
    const open = (caches: MemoryCaches, url = URL0) => openMlcStudent({ mlcUrl: url }, null, caches);
    // not downloaded at all
    let e = await engineError(open(new MemoryCaches()));
    expect(e.code).toBe('BAD_ARGUMENT');
    expect(e.message).toBe(
      `tiny-llama-q4f16_1-MLC is not in this browser's cache yet: download it first (Models, "MLC / web-llm", Download), or let web-llm download it. Nothing is fetched from the network when a model is read.`,
    );
    // a download stopped after the config, or after some shards, or before the tokenizer
    for (const missing of ['tensor-cache.json', 'params_shard_1.bin', 'tokenizer.json']) {
      const { caches, base } = cacheWith();
      caches.delete(base, missing);
      e = await engineError(open(caches));
      expect([missing, e.code]).toEqual([missing, 'TRUNCATED_FILE']);
      expect(e.message).toMatch(
        new RegExp(
          `^tiny-llama-q4f16_1-MLC is only partly in this browser's cache \\(${missing === 'tokenizer.json' ? 'tokenizer\\.json or tokenizer\\.model' : missing.replace('.', '\\.')} is missing\\): press Download to fetch the rest`,
        ),
      );
    }
    // a shard shorter than the manifest says (a file another tool cut)
    {
      const { caches, base } = cacheWith();
      const m = caches.stores.get('webllm/model')!;
      const key = `${base}params_shard_2.bin`;
      m.set(key, m.get(key)!.subarray(0, 100));
      e = await engineError(open(caches));
      expect(e.code).toBe('TRUNCATED_FILE');
      expect(e.message).toMatch(/^params_shard_2\.bin ends after 100 of [\d,]+ bytes/);
    }
    // another quantization: names the ones we read
    for (const q of ['q0f16', 'q4f16_ft', 'q3f16_1']) {
      e = await engineError(open(cacheWith(URL0, { chat: (c) => (c.quantization = q) }).caches));
      expect([q, e.code]).toEqual([q, 'BAD_FILE']);
      expect(e.message).toBe(
        `mlc-chat-config.json: the weights are quantized as "${q}"; dust2gold reads q4f16_1 and q4f32_1. Pick the q4f16_1 (or q4f32_1) build of this model.`,
      );
    }
    // another architecture, even when only its config is in the cache
    for (const [t, partial] of [
      ['qwen2', false],
      ['mistral', true],
    ] as const) {
      const { caches, base } = cacheWith(URL0, { chat: (c) => (c.model_type = t) });
      if (partial) caches.delete(base, 'tensor-cache.json');
      e = await engineError(open(caches));
      expect(e.code).toBe('BAD_FILE');
      expect(e.message).toMatch(
        new RegExp(`this is a "${t}" model; dust2gold loads MLC LLaMA models only \\(model_type "llama"\\)`),
      );
    }
    // a tokenizer for another vocabulary
    {
      const { caches } = cacheWith(URL0, {
        config: { ...C, vocabSize: 512 },
      });
      e = await engineError(open(caches));
      expect(e.code).toBe('VOCAB_MISMATCH');
    }
    // a URL web-llm could not key a cache by
    e = await engineError(open(new MemoryCaches(), 'mlc-ai/Llama-2-7b-chat-hf-q4f16_1-MLC'));
    expect(e.code).toBe('BAD_ARGUMENT');
    expect(e.message).toMatch(/is not an absolute URL/);
  });

  it('mlcCacheStatus: nothing, part, all — what web-llm or a Download kept', async () => {
    const none = await mlcCacheStatus(URL0, new MemoryCaches());
    expect(none).toEqual({
      base: BASE0,
      config: false,
      manifest: false,
      tokenizer: false,
      shards: 0,
      shardsCached: 0,
      bytesCached: 0,
      bytesTotal: 0,
      complete: false,
    });
    const { caches, files, base } = cacheWith();
    const shards = parseMlcManifest(files.get('tensor-cache.json')!).records;
    const total = shards.reduce((a, s) => a + s.nbytes, 0);
    expect(await mlcCacheStatus(URL0, caches)).toEqual({
      base,
      config: true,
      manifest: true,
      tokenizer: true,
      shards: shards.length,
      shardsCached: shards.length,
      bytesCached: total,
      bytesTotal: total,
      complete: true,
    });
    caches.delete(base, shards[0]!.dataPath);
    // a shard cut short counts as missing (web-llm keeps only whole files; this one came from elsewhere)
    const m = caches.stores.get('webllm/model')!;
    m.set(`${base}${shards[1]!.dataPath}`, new Uint8Array(3));
    expect(await mlcCacheStatus(URL0, caches)).toMatchObject({
      shardsCached: shards.length - 2,
      bytesCached: total - shards[0]!.nbytes - shards[1]!.nbytes,
      bytesTotal: total,
      complete: false,
    });
  });

  it('ids from URLs, and the list of web-llm models (absolute URLs web-llm keys by)', () => {
    expect(mlcModelId(BASE0)).toBe('tiny-llama-q4f16_1-MLC');
    expect(mlcModelId('https://example.org/models/My%20Llama/resolve/v2/')).toBe('My Llama');
    expect(mlcModelId(URL0)).toBe('tiny-llama-q4f16_1-MLC');
    expect(mlcModelId(`${URL0}/`)).toBe('tiny-llama-q4f16_1-MLC');
    expect(WEBLLM_LLAMA_MODELS.map((m) => m.id)).toContain('Llama-2-7b-chat-hf-q4f16_1-MLC');
    for (const m of WEBLLM_LLAMA_MODELS) {
      expect(m.url).toBe(`https://huggingface.co/mlc-ai/${m.id}`);
      expect(m.id).toMatch(/llama.*-q4f16_1-MLC$/i);
      expect(mlcModelId(webllmModelBase(m.url))).toBe(m.id);
      expect(mlcModelId(m.url)).toBe(m.id);
    }
  });
});
