// A GGUF LLaMA as the method's student (Node, Dawn): stories260K written to GGUF by our writer
// with llama2.c's tok512 vocabulary as its SentencePiece tokenizer. SentencePiece's BPE (spm.ts)
// encodes exactly as llama2.c's run.c on tok512 and decodes the same text except in the corners
// listed; the runtime plans, loads from a Blob or a URL (HTTP Range) with progress, and greedy
// decoding from BOS gives llama2.c's expected 200-step text exactly (F32 file); a Q8_0 file gives
// the logits of its own values dequantized; a plan over the budget is a typed refusal with the
// planner's suggestions that allocates nothing, a KV cache over one binding is split by sequences
// (and Solve samples on it); Cancel and a truncated file leave
// nothing behind and the previous model in use; Solve samples m rationales of a GSM8K question
// (its "$" readable through byte fallback) and refuses the built-in adapters (made for another model).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.ts';
import { nodeGpu } from '../../src/engine/gpu/node.ts';
import { fromBytes } from '../../src/engine/io/bytesource.ts';
import { readGgufHeader } from '../../src/engine/io/gguf.ts';
import { readLlamaF32 } from '../../src/engine/io/gguf-llama.ts';
import { SpmTokenizer } from '../../src/engine/io/spm.ts';
import { Llama2cTokenizer } from '../../src/engine/io/tokenizer.ts';
import { generate } from '../../src/engine/infer/generate.ts';
import { LlamaRunner } from '../../src/engine/infer/runner.ts';
import { destroyLlama, loadLlama } from '../../src/engine/model/llama.ts';
import { StudentRuntime, type LoadProgress } from '../../src/method/api/runtime.ts';
import { SolverEngine, type SolveEvent } from '../../src/method/api/solver.ts';
import { checkOp } from '../helpers/checkop.ts';
import { readBuf, EXPECTED } from '../helpers/stories.ts';
import { stories260KGguf, tok512Vocab } from '../helpers/stories-gguf.ts';
import { readdirSync, readFileSync } from 'node:fs';
import { logitsOf } from '../helpers/runner.ts';

const F32 = stories260KGguf('F32');
const Q8 = stories260KGguf('Q8_0');
const blob = (b: Uint8Array<ArrayBuffer>, name: string) => new File([b], name);

/** A deterministic generator (LCG) for the random strings and token lists. */
function rng(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
}

/** Greedy text from BOS with the KV cache Solve uses for the loaded model (`rt.kv`: f16 for GGUF). */
async function greedy(rt: StudentRuntime, steps: number): Promise<string> {
  const runner = new LlamaRunner(rt.model, { slots: 1, maxT: steps, kv: rt.kv });
  try {
    const tok = rt.tokenizer;
    const r = await generate(runner, tok, [tok.encode('', true, false)], {
      steps,
      temperature: 0,
      topp: 0.9,
      seed: 42,
      stopTokens: [tok.bos],
    });
    return r.texts[0]!;
  } finally {
    runner.destroy();
  }
}

async function engineError(p: Promise<unknown>): Promise<EngineError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof EngineError) return e;
    throw e;
  }
  throw new Error('expected an EngineError');
}

describe("SentencePiece from GGUF metadata vs llama2.c's tokenizer (tok512)", () => {
  const l2 = Llama2cTokenizer.parse(readBuf('public/models/tok512.bin'), 512, 'tok512.bin');
  const spm = new SpmTokenizer(tok512Vocab(), 'tok512 as GGUF');

  it('encode: the same tokens for the expected story, prompts and 3,000 random strings', () => {
    const texts = [
      EXPECTED.greedy_200,
      EXPECTED.topp09_seed133742_256,
      'Problem:\nJanet’s ducks lay 16 eggs per day. She sells them for $2 each (10% off).\nSolution:\n',
      '  two leading spaces, trailing space ',
      'tabs\tand\nnewlines\n\n',
      'émoji 🙂, CJK 中文, Greek αβγ',
      '',
    ];
    const next = rng(7);
    const alphabet = 'abcdefghijklmnopqrstuvwxyz     ABCDELOT.,!?\'"\n0123456789éü中$%-';
    for (let i = 0; i < 3000; i++) {
      let t = '';
      for (let n = Math.floor(next() * 40); n > 0; n--) t += alphabet[Math.floor(next() * alphabet.length)];
      texts.push(t);
    }
    let same = 0;
    for (const t of texts) {
      expect(spm.encode(t, true, false), JSON.stringify(t)).toEqual(l2.encode(t, true, false));
      same++;
    }
    expect(same).toBe(3007);
  });

  it('decode after BOS: the same text for pieces; where they differ (unknown, BOS inside, broken UTF-8)', () => {
    const next = rng(3);
    for (let i = 0; i < 2000; i++) {
      // normal pieces only (ids 259–511); byte tokens below
      const ids = Array.from({ length: 1 + Math.floor(next() * 20) }, () => 259 + Math.floor(next() * 253));
      expect(spm.decode([1, ...ids])).toBe(l2.decode(ids));
    }
    // well-formed byte runs: the same characters
    const snowman = [...new TextEncoder().encode(' ☃ é')].map((b) => b + 3);
    expect(spm.decode([1, ...snowman])).toBe(l2.decode(snowman));
    // the differences: the unknown token prints " ⁇ " (SentencePiece) vs its piece "<unk>" (run.c)
    expect([spm.decode([1, 0]), l2.decode([0])]).toEqual([' ⁇ ', '<unk>']);
    // a control token inside prints nothing vs run.c's "\n<s>\n" piece
    expect([spm.decode([1, 400, 1, 400]), l2.decode([400, 1, 400])]).toEqual([
      spm.piece(400).replace('▁', '') + spm.piece(400).replace('▁', ' '),
      spm.piece(400).replace('▁', '') + '\n<s>\n' + spm.piece(400).replace('▁', ''),
    ]);
    // an ill-formed byte run: one U+FFFD per byte vs the decoder's one per maximal subpart
    const cut = [0xe2, 0x98].map((b) => b + 3); // the first two of ☃'s three bytes
    expect([spm.decode([1, ...cut, 300]), l2.decode([...cut, 300])]).toEqual([
      '\uFFFD\uFFFD' + spm.piece(300).replace('▁', ' '),
      '\uFFFD' + spm.piece(300).replace('▁', ' '),
    ]);
  });
});

describe('StudentRuntime with a GGUF LLaMA (stories260K)', () => {
  let rt: StudentRuntime;
  beforeAll(async () => {
    rt = await StudentRuntime.open(await nodeGpu());
  });
  afterAll(() => rt?.destroy());

  it("F32 file from a Blob: header facts, plan, progress; greedy 200 steps = llama2.c's text", async () => {
    const file = blob(F32, 'stories260K-f32.gguf');
    const seen = await rt.inspectGguf({ gguf: file });
    const f = seen.facts;
    expect(f).toMatchObject({
      file: 'stories260K-f32.gguf',
      fileBytes: F32.length,
      version: 3,
      architecture: 'llama',
      title: 'stories260K',
      tensors: 47,
      tokenizer: { model: 'llama', tokens: 512, byteFallback: true, bos: 1, eos: 2 },
    });
    expect(f.config).toMatchObject({ dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4 });
    expect(f.config).toMatchObject({ vocabSize: 512, maxSeqLen: 512, sharedClassifier: true });
    expect(f.classes.map((c) => c.name)).toEqual([
      'token_embd',
      'output_norm',
      'attn_norm',
      'attn_q',
      'attn_k',
      'attn_v',
      'attn_output',
      'ffn_norm',
      'ffn_gate',
      'ffn_up',
      'ffn_down',
    ]);
    expect(f.classes.find((c) => c.name === 'attn_q')).toEqual({
      name: 'attn_q',
      count: 5,
      file: { F32: 5 },
      gpu: ['f32'],
      gpuBytes: 5 * 64 * 64 * 4,
    });
    // the plan by hand: 32 samples × 512 positions, f16 KV: 2 · 5 layers · 32 · 512 · kvDim 32 · 2 B
    const p = seen.plan;
    expect([p.sequences, p.context, p.kv, p.verdict, p.error]).toEqual([32, 512, 'f16', 'ok', null]);
    expect(p.items.kv).toBe(2 * 5 * 32 * 512 * 32 * 2);
    expect(p.items.weights).toBe(f.dataBytes); // an all-F32 file lands as it is
    expect(p.budgetAssumed).toBe(true);
    expect(p.text).toMatch(/^inference: 32 × 512 positions/);

    const progress: LoadProgress[] = [];
    const info = await rt.load(
      { gguf: file, key: 'f32', plan: { sequences: 4, context: 256 } },
      { onProgress: (q) => progress.push(q) },
    );
    expect(info).toMatchObject({
      name: 'stories260K-f32',
      format: 'gguf',
      key: 'f32',
      tokenizer: { kind: 'spm', tokens: 512 },
      limits: { sequences: 4, context: 256 },
    });
    expect(info.gguf!.plan.items.kv).toBe(2 * 5 * 4 * 256 * 32 * 2);
    expect(rt.kv).toBe('f16'); // Solve's runner keeps the KV cache in f16 for a GGUF model, as planned
    expect(progress[0]).toEqual({ bytesDone: 0, bytesTotal: f.dataBytes, tensor: 'token_embd.weight' });
    expect(progress.at(-1)).toEqual({
      bytesDone: f.dataBytes,
      bytesTotal: f.dataBytes,
      tensor: 'blk.4.ffn_down.weight',
    });
    for (let i = 1; i < progress.length; i++)
      expect(progress[i]!.bytesDone).toBeGreaterThan(progress[i - 1]!.bytesDone);
    expect(rt.tokenizer).toBeInstanceOf(SpmTokenizer);
    expect(await greedy(rt, 200)).toBe(EXPECTED.greedy_200);
  }, 120_000);

  it('Q8_0 file by URL (HTTP Range): blocks as stored; logits = its own values in f32', async () => {
    let ranges = 0;
    const server: Server = createServer((req, res) => {
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      if (!m) {
        res.writeHead(200, { 'Content-Length': Q8.length }).end(Buffer.from(Q8));
        return;
      }
      ranges++;
      const a = Number(m[1]);
      const b = Math.min(Number(m[2]), Q8.length - 1);
      res
        .writeHead(206, { 'Content-Range': `bytes ${a}-${b}/${Q8.length}`, 'Content-Length': b - a + 1 })
        .end(Buffer.from(Q8.subarray(a, b + 1)));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/models/stories260K-q8_0.gguf`;
      const info = await rt.load({ ggufUrl: url, plan: { sequences: 2, context: 64 } });
      expect(info.name).toBe('stories260K-q8_0');
      const q = info.gguf!.facts.classes;
      expect(q.find((c) => c.name === 'attn_q')!.gpu).toEqual(['q8_0 (blocks as stored)']);
      expect(q.find((c) => c.name === 'token_embd')!.gpu).toEqual(['q8_0 (blocks as stored)']);
      // rows of 172 values are not whole q8_0 blocks: ffn_down stays F32 in the file and on the GPU
      expect(q.find((c) => c.name === 'ffn_down')).toMatchObject({ file: { F32: 5 }, gpu: ['f32'] });
      expect(ranges).toBeGreaterThan(40); // the header, then one read per tensor: never the whole file
    } finally {
      await new Promise((r) => server.close(r));
    }
    // the same file's values dequantized, loaded as f32: the same logits over a prompt
    const src = fromBytes(Q8, 'q8.gguf');
    const { config, weights } = await readLlamaF32(await readGgufHeader(src), src);
    const f32 = loadLlama(rt.be, config, weights);
    try {
      const tokens = rt.tokenizer.encode('Lily and Tom went to the park', true, false);
      checkOp('model_logits', await logitsOf(rt.model, tokens), await logitsOf(f32, tokens));
    } finally {
      destroyLlama(f32);
    }
    // q8_0 greedy follows llama2.c's f32 story for its first sentences (295 characters here)
    const text = await greedy(rt, 200);
    expect(text.slice(0, 200)).toBe(EXPECTED.greedy_200.slice(0, 200));
  }, 120_000);

  it('a plan over the budget is refused before any allocation; a KV cache over a binding is split', async () => {
    await rt.load({ gguf: blob(F32, 'f32.gguf'), key: 'kept', plan: { sequences: 1, context: 32 } });
    const before = rt.gpu.liveBuffers;
    const file = blob(F32, 'again.gguf');
    // 32 × 512 needs 11.5 MiB; a 4 MiB budget holds the weights and 8 samples (320 KiB of f16 KV cache each)
    const oom = await engineError(
      rt.load({ gguf: file, plan: { sequences: 32, context: 512, memoryBudget: 4 * 2 ** 20 } }),
    );
    expect(oom.code).toBe('OUT_OF_MEMORY');
    expect(oom.message).toMatch(/32 sequences × 512 positions needs 11\.5 MiB/);
    expect(oom.message).toMatch(
      /To fit: at most 8 sequences at 512 positions \(4\.0 MiB\); or 32 sequences at most 129 positions long/,
    );
    const seen = await rt.inspectGguf({
      gguf: file,
      plan: { sequences: 32, context: 512, memoryBudget: 4 * 2 ** 20 },
    });
    expect(seen.plan.verdict).toBe('refused');
    expect(seen.plan.error).toEqual({ code: 'OUT_OF_MEMORY', message: oom.message });
    expect(seen.plan.suggestions[0]).toMatchObject({ kind: 'sequences', sequences: 8 });
    expect(rt.gpu.liveBuffers).toEqual(before);
    expect(rt.modelInfo!.key).toBe('kept'); // the previous model is still the one in use

    // a GPU that binds 128 KiB per buffer: a layer's f16 KV cache for 32 × 512 (1 MiB) is kept in
    // 8 parts of 4 sequences (tests/gpu/split-kv.test.ts); the load goes ahead with the plan's m
    const small = await StudentRuntime.open(await nodeGpu(), {
      limits: { maxStorageBufferBindingSize: 2 ** 17 },
    });
    try {
      const seen = await small.inspectGguf({ gguf: file });
      expect(seen.plan.verdict).toBe('ok');
      expect(seen.plan.splits.filter((x) => x.name.endsWith('cache.*'))).toEqual([
        expect.objectContaining({ name: 'kcache.*', count: 5, parts: 8, rowsPerPart: 4 }),
        expect.objectContaining({ name: 'vcache.*', count: 5, parts: 8, rowsPerPart: 4 }),
      ]);
      const info = await small.load({ gguf: file, plan: { sequences: 12 } });
      expect(info.limits).toEqual({ sequences: 12, context: 512 });
      // Solve samples 12 on the split cache (parts of 4) and keeps to the plan
      const solver = new SolverEngine(small);
      const r = await solver.solve(
        { question: 'Tom has 3 apples.', kind: 'gsm8k', m: 12, temperature: 0.8, seed: 1, maxNew: 8 },
        () => {},
      );
      expect(r.samples).toHaveLength(12);
      const err = await engineError(
        solver.solve({ question: 'Tom has 3 apples.', kind: 'gsm8k', m: 13 }, () => {}),
      );
      expect(err.message).toMatch(/loaded for at most 12 samples at once/);
    } finally {
      small.destroy();
    }
  }, 120_000);

  it('Cancel and a truncated file: typed errors, nothing left on the GPU, the previous model stays', async () => {
    await rt.load({ gguf: blob(F32, 'f32.gguf'), key: 'kept', plan: { sequences: 1, context: 32 } });
    const before = rt.gpu.liveBuffers;
    const solver = new SolverEngine(rt);
    let calls = 0;
    const cancelled = solver.load({ gguf: blob(Q8, 'q8.gguf'), plan: { sequences: 1, context: 32 } }, (q) => {
      if (++calls === 3 && q.bytesDone > 0) solver.cancelLoad();
    });
    await expect(cancelled).rejects.toMatchObject({ name: 'AbortError' });
    expect(calls).toBe(3);
    expect(rt.gpu.liveBuffers).toEqual(before);
    expect(rt.modelInfo!.key).toBe('kept');

    const cut = F32.slice(0, F32.length - 4096);
    const trunc = await engineError(solver.load({ gguf: blob(cut, 'cut.gguf') }));
    expect(trunc.code).toBe('TRUNCATED_FILE');
    expect(trunc.message).toMatch(/^cut\.gguf/);
    expect(rt.gpu.liveBuffers).toEqual(before);
    expect(rt.modelInfo!.key).toBe('kept');
    const story = await greedy(rt, 40);
    expect(story.length).toBeGreaterThan(100);
    expect(EXPECTED.greedy_200.startsWith(story)).toBe(true);
  }, 120_000);
});

describe('Solve with a GGUF student', () => {
  let rt: StudentRuntime;
  let solver: SolverEngine;
  beforeAll(async () => {
    rt = await StudentRuntime.open(await nodeGpu());
    solver = new SolverEngine(rt);
    await solver.init();
    await solver.load({ gguf: blob(F32, 'stories260K.gguf'), plan: { sequences: 4, context: 160 } });
  });
  afterAll(() => solver?.dispose());

  it('a GSM8K question: readable, 4 samples streamed, answers extracted; built-in adapters refused', async () => {
    const question = 'Janet sells 16 eggs for $2 each. How much does she make?';
    expect(solver.unreadable(question)).toEqual([]);
    const events: SolveEvent[] = [];
    const r = await solver.solve(
      { question, kind: 'gsm8k', gold: '32', m: 4, temperature: 0.8, seed: 5, maxNew: 40 },
      (e) => events.push(...e),
    );
    expect(r.samples).toHaveLength(4);
    for (const [s, sample] of r.samples.entries()) {
      expect(sample.tokens).toBeGreaterThan(0);
      expect(sample.text.length).toBeGreaterThan(0);
      // the streamed pieces are the sample's text
      const streamed = events
        .filter((e) => e.type === 'text' && e.seq === s)
        .map((e) => (e as { text: string }).text);
      expect(streamed.join('').trim()).toBe(sample.text.trim());
      expect(sample.correct).toBe(sample.answer === '32');
    }
    expect(events.some((e) => e.type === 'votes')).toBe(true);

    const dir = 'public/models/adapters/kd';
    const files: Record<string, ArrayBuffer> = {};
    for (const f of readdirSync(dir)) {
      const b = readFileSync(`${dir}/${f}`);
      files[f] = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
    }
    expect(solver.fits(files, 'KD')).toMatch(
      /^"KD" was trained for another model \(hiddenDim 176, this model has 172\)\. Pick adapters made for this model/,
    );
    const err = await engineError(solver.setStudent(files, 'KD'));
    expect(err.code).toBe('SHAPE_MISMATCH');
    expect(err.message).toBe(solver.fits(files, 'KD'));
  }, 120_000);
});
