// Issue 5's must-show: a random-weight model with LLaMA-7b's layer shapes (dim 4096, hidden 11008,
// 32 heads, 32 kv heads; 2 layers, vocab 512, context 64), written as a GGUF Q4_0 file by our writer
// (tools/gguf-write.ts) in memory and streamed onto the GPU by loadLlamaGguf: matrices, classifier
// and token embedding stay q4_0 on the GPU.
// (a) one forward of the prompt on the GPU (Node, Dawn) equals the CPU reference (run.c-style
//     RefLlama on the file's values dequantized to f32);
// (b) greedy text: the q4_0 build generates 12 tokens with the engine's `generate`; the same values
//     in f32 (dequantized, loadLlama) on the GPU run the prompt and those tokens in one forward, and
//     f32's argmax at every position must be the token q4_0 chose next. That is the statement "f32's
//     greedy run gives the same 12 tokens" (by induction over the positions, with the same argmax),
//     at the cost of one batched forward instead of 11 sequential ones (SwiftShader's f32 decode
//     step is its slowest: ~1.6 GB of weights per token).
// The weights are seeded random q4_0 blocks (written as they are; values about ±1/√K, so logits
// are not flat). Host memory at the peak ≈ 3.5 GB (f32 copy 1.6 GB, SwiftShader's buffers as much);
// everything is freed at the end. About a minute on two idle cores.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuBackend } from '../../src/engine/backend/gpu.ts';
import { generate } from '../../src/engine/infer/generate.ts';
import { LlamaRunner } from '../../src/engine/infer/runner.ts';
import { Sampler } from '../../src/engine/infer/sampler.ts';
import { fromBytes, type ByteSource } from '../../src/engine/io/bytesource.ts';
import { readGgufHeader, type GgufFile } from '../../src/engine/io/gguf.ts';
import { ggufDims, oursToGgufName, readLlamaF32 } from '../../src/engine/io/gguf-llama.ts';
import { loadLlamaGguf } from '../../src/engine/io/load-gguf.ts';
import { spmTokenizerFromGguf, type SpmTokenizer } from '../../src/engine/io/spm.ts';
import { LLAMA_7B, type LlamaConfig } from '../../src/engine/model/config.ts';
import { destroyLlama, loadLlama } from '../../src/engine/model/llama.ts';
import type { WeightName } from '../../src/engine/model/weights.ts';
import { f32ToF16 } from '../../src/engine/quant.ts';
import { RefLlama } from '../../src/engine/ref/llama.ts';
import { llamaGgufMetadata, writeGguf, type GgufWriteTensor } from '../../tools/gguf-write.ts';
import { checkOp } from '../helpers/checkop.ts';
import { testGpu } from '../helpers/gpu.ts';

const CONFIG: LlamaConfig = { ...LLAMA_7B, nLayers: 2, vocabSize: 512, maxSeqLen: 64 };
const PROMPT = [1, 300]; // BOS and one token
const NEW_TOKENS = 12;

/** xorshift32, seeded. */
function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>>= 0);
  };
}

/**
 * Seeded Q4_0 blocks for n values: random nibbles, and per block d = scale · (0.5 … 1.5) · (±1),
 * so values are (q − 8)·d with |value| ≲ 8·1.5·scale.
 */
function randomQ4_0(n: number, scale: number, seed: number): Uint8Array {
  const next = xorshift(seed);
  const blocks = n / 32;
  const out = new Uint8Array(blocks * 18);
  const words = new Uint32Array(4);
  const wordBytes = new Uint8Array(words.buffer);
  for (let b = 0; b < blocks; b++) {
    const r = next();
    const d = scale * (0.5 + (r & 0xffff) / 65536) * (r & 0x10000 ? -1 : 1);
    const h = f32ToF16(d);
    const o = b * 18;
    out[o] = h & 0xff;
    out[o + 1] = h >>> 8;
    for (let j = 0; j < 4; j++) words[j] = next();
    out.set(wordBytes, o + 2);
  }
  return out;
}

/**
 * The model as llamaGguf would lay it out (llama.cpp's names and order, llama.* metadata, the tiny
 * tokenizer), with seeded Q4_0 blocks for every matrix and the embedding, and norms 1 ± 0.5 in F32.
 */
function llama7bShapeGguf(c: LlamaConfig, seed: number): Uint8Array {
  const tensors: GgufWriteTensor[] = [];
  let s = seed;
  const add = (weight: WeightName, layer: number | null) => {
    const dims = ggufDims(c, weight);
    const name = oursToGgufName(weight, layer);
    s++;
    if (dims.length === 1) {
      const next = xorshift(s);
      const data = Float32Array.from({ length: dims[0]! }, () => 0.5 + next() / 2 ** 32);
      tensors.push({ name, type: 'F32', dims, data });
      return;
    }
    // values ≈ uniform ±1 for the embedding, ±1/√K for matrices (q − 8 has RMS ≈ 4.6)
    const scale = (weight === 'tokenEmbedding' ? 0.58 : 1 / Math.sqrt(3 * dims[0]!)) / 4.6;
    tensors.push({ name, type: 'Q4_0', dims, rawBytes: randomQ4_0(dims[0]! * dims[1]!, scale, s) });
  };
  add('tokenEmbedding', null);
  add('rmsFinal', null);
  add('wcls', null);
  for (let l = 0; l < c.nLayers; l++)
    for (const w of ['rmsAtt', 'wq', 'wk', 'wv', 'wo', 'rmsFfn', 'w1', 'w3', 'w2'] as const) add(w, l);
  return writeGguf({ version: 3, metadata: llamaGgufMetadata(c, 'Q4_0'), tensors });
}

let file: GgufFile;
let src: ByteSource;
let tok: SpmTokenizer;
const log: string[] = [];

beforeAll(async () => {
  const t0 = performance.now();
  const bytes = llama7bShapeGguf(CONFIG, 7);
  src = fromBytes(bytes, 'llama7b-shape-q4_0.gguf');
  file = await readGgufHeader(src);
  tok = spmTokenizerFromGguf(file, CONFIG.vocabSize);
  log.push(
    `wrote ${(bytes.length / 2 ** 20).toFixed(0)} MiB of GGUF in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
});

afterAll(() => {
  console.log(log.join('\n'));
});

describe('LLaMA-7b layer shapes (2 layers) from a GGUF Q4_0 file', () => {
  it('(a) a forward on the GPU equals the CPU reference; (b) greedy text from q4_0 = from f32', async () => {
    const gpu = await testGpu();
    const be = new GpuBackend(gpu);
    const before = gpu.liveBuffers;
    let t = performance.now();
    const lap = (what: string) => {
      const now = performance.now();
      log.push(`${what}: ${((now - t) / 1000).toFixed(1)} s`);
      t = now;
    };
    const V = CONFIG.vocabSize;
    const promptRows = PROMPT.map((token, pos) => ({ slot: 0, pos, token }));

    // the q4_0 build streamed onto the GPU: (a)'s forward of the prompt, then greedy text
    const q4 = await loadLlamaGguf(be, file, src);
    lap('loadLlamaGguf (q4_0 onto the GPU)');
    let q4Logits: Float32Array;
    let greedy;
    try {
      expect([q4.tokenEmbedding.dtype, q4.layers[1]!.w2.dtype, q4.wcls.dtype]).toEqual([
        'q4_0',
        'q4_0',
        'q4_0',
      ]);
      let runner = new LlamaRunner(q4, { slots: 1, maxT: PROMPT.length });
      q4Logits = await runner.forward(
        promptRows,
        promptRows.map((_, i) => i),
      );
      runner.destroy();
      lap(`(a) q4_0: forward of the ${PROMPT.length}-token prompt`);
      // positions: the prompt, then 11 tokens fed back; the 12th is sampled, not run
      runner = new LlamaRunner(q4, { slots: 1, maxT: PROMPT.length + NEW_TOKENS - 1 });
      greedy = await generate(runner, tok, [PROMPT], {
        steps: PROMPT.length + NEW_TOKENS - 1,
        temperature: 0,
        topp: 1,
        seed: 1,
        stopTokens: [],
      });
      runner.destroy();
      lap(`(b) q4_0: ${NEW_TOKENS} greedy tokens (generate)`);
    } finally {
      destroyLlama(q4);
    }
    const seq = [PROMPT[0]!, ...greedy.tokens[0]!]; // tokens[0] is what follows BOS
    expect(greedy.generated[0]).toBe(NEW_TOKENS);
    expect(seq.slice(0, PROMPT.length)).toEqual(PROMPT);
    expect(new Set(seq.slice(PROMPT.length)).size).toBeGreaterThan(3); // not one token over and over
    log.push(`greedy tokens: ${seq.join(' ')}; text ${JSON.stringify(greedy.texts[0])}`);

    // the same values in f32 on the GPU: the prompt and q4_0's tokens in one forward
    const { weights } = await readLlamaF32(file, src, 2 ** 31);
    lap('dequantized to f32 (readLlamaF32)');
    const f32 = loadLlama(be, CONFIG, weights);
    lap('loadLlama (f32 onto the GPU)');
    let f32Logits: Float32Array;
    try {
      const rows = seq.slice(0, -1).map((token, pos) => ({ slot: 0, pos, token }));
      const runner = new LlamaRunner(f32, { slots: 1, maxT: rows.length });
      f32Logits = await runner.forward(
        rows,
        rows.map((_, i) => i),
      );
      runner.destroy();
    } finally {
      destroyLlama(f32);
    }
    lap(`(b) f32: one forward of ${seq.length - 1} rows`);
    expect(gpu.liveBuffers).toEqual(before);

    // (b) f32's greedy choice (the engine's sampler at temperature 0) at every generated position
    const argmax = new Sampler(V, 0, 1, 1);
    const margins: number[] = [];
    for (let pos = PROMPT.length - 1; pos < seq.length - 1; pos++) {
      const row = f32Logits.subarray(pos * V, (pos + 1) * V);
      expect(argmax.sample(row), `position ${pos + 1}`).toBe(seq[pos + 1]);
      const sorted = Float32Array.from(row).sort();
      margins.push(sorted[V - 1]! - sorted[V - 2]!);
    }
    log.push(
      `f32 top-1 − top-2 logit at the generated positions: ${margins.map((m) => m.toFixed(3)).join(' ')}`,
    );

    // (a) the q4_0 forward (and f32's) against the CPU reference on the prompt's positions
    const ref = new RefLlama(CONFIG, weights);
    let spread = 0;
    let q4Err = 0,
      f32Err = 0;
    for (let pos = 0; pos < PROMPT.length; pos++) {
      const want = ref.forward(PROMPT[pos]!, pos);
      q4Err = Math.max(
        q4Err,
        checkOp('model_logits', q4Logits.subarray(pos * V, (pos + 1) * V), want).maxAbs,
      );
      f32Err = Math.max(
        f32Err,
        checkOp('model_logits', f32Logits.subarray(pos * V, (pos + 1) * V), want).maxAbs,
      );
      spread = Math.max(spread, Math.max(...want) - Math.min(...want));
    }
    lap(`(a) CPU reference, ${PROMPT.length} positions`);
    log.push(
      `largest |GPU − CPU reference| logit: q4_0 ${q4Err.toExponential(2)}, f32 ${f32Err.toExponential(2)}`,
    );
    expect(spread).toBeGreaterThan(1); // the logits are not flat
  }, 300_000);
});
