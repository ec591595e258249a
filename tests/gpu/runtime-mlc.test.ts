// web-llm's MLC build as the method's student (Node, Dawn): a small LLaMA written by our writer
// (q4f16_1 shards, the fixture's SentencePiece tokenizer.json) sits in a Cache Storage in memory
// under web-llm's keys (the Cache API is the only stand-in). The runtime inspects and plans it
// like a GGUF model, loads it with progress (q4f16_1 matrices as stored, the embedding repacked to
// q4_0, padded rows f32), and its greedy text equals the text of the same folder's values loaded as
// f32; refusals (not in the cache, a missing shard, another quantization or architecture, a plan
// that does not fit the budget or the GPU's binding limit) allocate nothing and keep the previous
// model in use; Cancel frees what was loaded; Solve samples m = 4 rationales from it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.ts';
import { nodeGpu } from '../../src/engine/gpu/node.ts';
import type { Tensor } from '../../src/engine/gpu/tensor.ts';
import { generate } from '../../src/engine/infer/generate.ts';
import { LlamaRunner } from '../../src/engine/infer/runner.ts';
import { memoryFolder, openMlc, readMlcWeightsF32 } from '../../src/engine/io/mlc.ts';
import { SpmTokenizer } from '../../src/engine/io/spm.ts';
import { spmTokenizerFromHfJson } from '../../src/engine/io/spm-json.ts';
import { destroyLlama, loadLlama, type LlamaModel } from '../../src/engine/model/llama.ts';
import { StudentRuntime, type LoadProgress } from '../../src/method/api/runtime.ts';
import { SolverEngine, type SolveEvent } from '../../src/method/api/solver.ts';
import { checkOp } from '../helpers/checkop.ts';
import {
  MemoryCaches,
  MLC_STUDENT_CONFIG as C,
  mlcStudentFiles,
  putMlcFiles,
  SPM_TOKENIZER_JSON,
} from '../helpers/mlc-student.ts';
import { logitsOf } from '../helpers/runner.ts';

const URL1 = 'https://huggingface.co/mlc-ai/tiny-llama-q4f16_1-MLC';
const ID = 'tiny-llama-q4f16_1-MLC';
const PROMPT = 'Problem:\nTom has 3 apples and buys 4 more. How many?\nSolution:\n';

async function engineError(p: Promise<unknown>): Promise<EngineError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof EngineError) return e;
    throw e;
  }
  throw new Error('expected an EngineError');
}

/** Greedy continuation of PROMPT with an f16 KV cache (what Solve's runner uses for a big model). */
async function greedy(
  model: LlamaModel<Tensor>,
  tok: SpmTokenizer,
  steps: number,
): Promise<{ text: string; tokens: number[] }> {
  const runner = new LlamaRunner(model, { slots: 1, maxT: steps, kv: 'f16' });
  try {
    const r = await generate(runner, tok, [tok.encode(PROMPT, true, false)], {
      steps,
      temperature: 0,
      topp: 1,
      seed: 1,
      stopTokens: [tok.eos],
    });
    return { text: r.texts[0]!, tokens: r.tokens[0]! };
  } finally {
    runner.destroy();
  }
}

describe('StudentRuntime with web-llm’s MLC build from Cache Storage', () => {
  const files = mlcStudentFiles();
  const caches = new MemoryCaches();
  let rt: StudentRuntime;
  beforeAll(async () => {
    putMlcFiles(caches, URL1, files);
    rt = await StudentRuntime.open(await nodeGpu(), {}, { caches });
  });
  afterAll(() => rt?.destroy());

  it('inspect, plan, load with progress; greedy text = the same values loaded as f32', async () => {
    const seen = await rt.inspectMlc({ mlcUrl: URL1 });
    expect(seen.facts).toMatchObject({
      id: ID,
      quantization: 'q4f16_1',
      config: C,
      tokenizer: { file: 'tokenizer.json', tokens: 500, byteFallback: true, bos: 1, eos: 2 },
    });
    // planned like a GGUF model: 32 samples × 512 positions, f16 KV cache, weights as they sit on the GPU
    const p = seen.plan;
    expect([p.sequences, p.context, p.kv, p.verdict, p.error]).toEqual([32, 512, 'f16', 'ok', null]);
    expect(p.items.kv).toBe(2 * 2 * 32 * 512 * 32 * 2);
    expect(p.items.weights).toBe(seen.facts.classes.reduce((a, c) => a + c.gpuBytes, 0));

    const progress: LoadProgress[] = [];
    const before = rt.gpu.liveBuffers;
    const info = await rt.load(
      { mlcUrl: URL1, key: 'mlc', plan: { sequences: 4, context: 256 } },
      { onProgress: (q) => progress.push(q) },
    );
    expect(info).toMatchObject({
      name: ID,
      format: 'mlc',
      key: 'mlc',
      params: seen.facts.params,
      tokenizer: { kind: 'spm', tokens: 500 },
      limits: { sequences: 4, context: 256 },
    });
    expect(info.mlc!.plan.items.kv).toBe(2 * 2 * 4 * 256 * 32 * 2);
    expect(info.gguf).toBeUndefined();
    expect(rt.kv).toBe('f16');
    // 1 embedding + 2 layers × (2 norms + 7 matrices) + final norm + lm_head: the bytes the plan counted
    expect(rt.gpu.liveBuffers.count - before.count).toBe(1 + 2 * 9 + 2);
    expect(rt.gpu.liveBuffers.bytes - before.bytes).toBe(p.items.weights);
    const total = seen.facts.dataBytes;
    expect(progress[0]).toEqual({ bytesDone: 0, bytesTotal: total, tensor: 'model.embed_tokens' });
    expect(progress.at(-1)).toEqual({ bytesDone: total, bytesTotal: total, tensor: 'lm_head' });
    for (let i = 1; i < progress.length; i++)
      expect(progress[i]!.bytesDone).toBeGreaterThan(progress[i - 1]!.bytesDone);
    expect(progress.some((q) => q.tensor === 'model.layers.1.self_attn.qkv_proj')).toBe(true);

    // the tokenizer is the folder's tokenizer.json
    const tok = rt.tokenizer as SpmTokenizer;
    expect(tok).toBeInstanceOf(SpmTokenizer);
    const ref = spmTokenizerFromHfJson(SPM_TOKENIZER_JSON);
    expect(tok.encode(PROMPT, true, false)).toEqual(ref.encode(PROMPT, true, false));

    // the same folder read as f32 values (readMlcWeightsF32) and loaded as an f32 model
    const mlc = await openMlc(memoryFolder(ID, files));
    const f32 = loadLlama(rt.be, mlc.config, await readMlcWeightsF32(mlc));
    try {
      const prompt = tok.encode(PROMPT, true, false);
      checkOp('model_logits', await logitsOf(rt.model, prompt), await logitsOf(f32, prompt));
      const a = await greedy(rt.model, tok, 96);
      const b = await greedy(f32, tok, 96);
      expect(a.tokens.length).toBeGreaterThan(prompt.length + 20);
      expect(a.tokens).toEqual(b.tokens);
      expect(a.text).toBe(b.text);
      expect(a.text.length).toBeGreaterThan(PROMPT.length);
    } finally {
      destroyLlama(f32);
    }
  }, 120_000);

  it('refusals allocate nothing and keep the model in use: not cached, a shard missing, q0f16, qwen2, the plan', async () => {
    await rt.load({ mlcUrl: URL1, key: 'kept', plan: { sequences: 1, context: 32 } });
    const before = rt.gpu.liveBuffers;
    const check = async (url: string, code: string, message: RegExp) => {
      const e = await engineError(rt.load({ mlcUrl: url }));
      expect([url, e.code]).toEqual([url, code]);
      expect(e.message).toMatch(message);
      expect(rt.gpu.liveBuffers).toEqual(before);
      expect(rt.modelInfo!.key).toBe('kept');
    };
    await check(
      'https://huggingface.co/mlc-ai/absent-q4f16_1-MLC',
      'BAD_ARGUMENT',
      /^absent-q4f16_1-MLC is not in this browser's cache yet: download it first/,
    );
    const cut = 'https://example.org/cut-q4f16_1-MLC';
    caches.delete(putMlcFiles(caches, cut, files), 'params_shard_2.bin');
    await check(
      cut,
      'TRUNCATED_FILE',
      /^cut-q4f16_1-MLC is only partly in this browser's cache \(params_shard_2\.bin is missing\): press Download/,
    );
    const q0 = 'https://example.org/q0-MLC';
    putMlcFiles(caches, q0, mlcStudentFiles({ chat: (c) => (c.quantization = 'q0f16') }));
    await check(q0, 'BAD_FILE', /quantized as "q0f16"; dust2gold reads q4f16_1 and q4f32_1/);
    const qwen = 'https://example.org/qwen-MLC';
    putMlcFiles(caches, qwen, mlcStudentFiles({ chat: (c) => (c.model_type = 'qwen2') }));
    await check(qwen, 'BAD_FILE', /"qwen2" model; dust2gold loads MLC LLaMA models only/);

    // a budget of 1 MiB: the weights and 2 samples of 512 positions fit, 32 do not
    const oom = await engineError(
      rt.load({ mlcUrl: URL1, plan: { sequences: 32, context: 512, memoryBudget: 2 ** 20 } }),
    );
    expect(oom.code).toBe('OUT_OF_MEMORY');
    expect(oom.message).toMatch(/^Inference with 32 sequences × 512 positions needs [\d.]+ MiB/);
    expect(oom.message).toMatch(/To fit: at most \d sequences? at 512 positions/);
    const seen = await rt.inspectMlc({
      mlcUrl: URL1,
      plan: { sequences: 32, context: 512, memoryBudget: 2 ** 20 },
    });
    expect(seen.plan.verdict).toBe('refused');
    expect(seen.plan.error).toEqual({ code: 'OUT_OF_MEMORY', message: oom.message });
    expect(seen.plan.suggestions[0]).toMatchObject({ kind: 'sequences' });
    expect(rt.gpu.liveBuffers).toEqual(before);
    expect(rt.modelInfo!.key).toBe('kept');

    // a GPU that binds 128 KiB per buffer: a layer's f16 KV cache for 32 × 512 (1 MiB) is split by
    // sequences, 4 to a part; Solve samples the same texts as with the cache in one buffer
    const small = await StudentRuntime.open(
      await nodeGpu(),
      { limits: { maxStorageBufferBindingSize: 2 ** 17 } },
      { caches },
    );
    const whole = await StudentRuntime.open(await nodeGpu(), {}, { caches });
    try {
      const loaded = await small.load({ mlcUrl: URL1 });
      expect(loaded.limits).toEqual({ sequences: 32, context: 512 });
      const seen = await small.inspectMlc({ mlcUrl: URL1 });
      expect(seen.plan.verdict).toBe('ok');
      expect(seen.plan.splits.filter((x) => x.name.endsWith('cache.*'))).toEqual([
        expect.objectContaining({ name: 'kcache.*', count: 2, parts: 8, rowsPerPart: 4 }),
        expect.objectContaining({ name: 'vcache.*', count: 2, parts: 8, rowsPerPart: 4 }),
      ]);
      await whole.load({ mlcUrl: URL1 });
      const ask = { question: 'Tom has 3 apples and buys 4 more.', kind: 'gsm8k' as const, m: 9 };
      const sample = { ...ask, temperature: 0.8, seed: 5, maxNew: 16 };
      const [a, b] = [
        await new SolverEngine(small).solve(sample, () => {}),
        await new SolverEngine(whole).solve(sample, () => {}),
      ];
      expect(a.samples.map((x) => x.text)).toEqual(b.samples.map((x) => x.text));
      expect(new Set(a.samples.map((x) => x.text)).size).toBeGreaterThan(1);
    } finally {
      small.destroy();
      whole.destroy();
    }
  }, 120_000);

  it('Cancel mid-load: an AbortError, nothing left on the GPU, the previous model stays', async () => {
    await rt.load({ mlcUrl: URL1, key: 'kept', plan: { sequences: 1, context: 32 } });
    const before = rt.gpu.liveBuffers;
    const solver = new SolverEngine(rt);
    let calls = 0;
    const cancelled = solver.load(
      { mlcUrl: URL1, key: 'other', plan: { sequences: 1, context: 32 } },
      (q) => {
        if (++calls === 4 && q.bytesDone > 0) solver.cancelLoad();
      },
    );
    await expect(cancelled).rejects.toMatchObject({ name: 'AbortError' });
    expect(calls).toBe(4);
    expect(rt.gpu.liveBuffers).toEqual(before);
    expect(rt.modelInfo!.key).toBe('kept');
  }, 120_000);
});

describe('Solve with an MLC student', () => {
  const caches = new MemoryCaches();
  let solver: SolverEngine;
  beforeAll(async () => {
    putMlcFiles(caches, URL1, mlcStudentFiles());
    solver = new SolverEngine(await StudentRuntime.open(await nodeGpu(), {}, { caches }));
    await solver.init();
    await solver.load({ mlcUrl: URL1, plan: { sequences: 4, context: 160 } });
  });
  afterAll(() => solver?.dispose());

  it('4 samples of a question stream and end; m above the plan is refused', async () => {
    const question = 'Tom has 3 apples and buys 4 more. How many apples does he have?';
    expect(solver.unreadable(question)).toEqual([]);
    const events: SolveEvent[] = [];
    const r = await solver.solve(
      { question, kind: 'gsm8k', gold: '7', m: 4, temperature: 0.8, seed: 3, maxNew: 24 },
      (e) => events.push(...e),
    );
    expect(r.samples).toHaveLength(4);
    for (const [s, sample] of r.samples.entries()) {
      expect(sample.tokens).toBeGreaterThan(0);
      expect(sample.text.trim().length).toBeGreaterThan(0);
      const streamed = events
        .filter((e) => e.type === 'text' && e.seq === s)
        .map((e) => (e as { text: string }).text);
      // (random weights write broken UTF-8: the stream prints no lone control byte, as run.c, and one
      // U+FFFD per byte of a broken run, as SentencePiece; the sample's text is TextDecoder's)
      const visible = (t: string) =>
        [...t]
          .filter((ch) => {
            const c = ch.codePointAt(0)!;
            return c !== 0xfffd && c !== 0x7f && (c >= 0x20 || (c >= 0x09 && c <= 0x0d));
          })
          .join('')
          .trim();
      expect(visible(streamed.join(''))).toBe(visible(sample.text));
    }
    expect(r.student).toBe('base');
    const err = await engineError(solver.solve({ question, kind: 'gsm8k', m: 5 }, () => {}));
    expect(err.message).toMatch(/loaded for at most 4 samples at once/);
  }, 120_000);
});
