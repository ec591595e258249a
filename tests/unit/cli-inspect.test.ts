import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { fromFile } from '../../src/cli/files.ts';
import { inspectCommand, inspectModel, type ModelReport } from '../../src/cli/inspect.ts';
import { PRESETS, planCommand } from '../../src/cli/plan.ts';
import { EngineError, formatBytes } from '../../src/engine/errors.ts';
import { fromBytes } from '../../src/engine/io/bytesource.ts';
import { readGgufHeader } from '../../src/engine/io/gguf.ts';
import { paramCount, type LlamaConfig } from '../../src/engine/model/config.ts';
import { randomLlamaWeights } from '../../src/engine/model/random.ts';
import { llamaGgufMetadata, llamaGgufTensors, meta, writeGguf } from '../../tools/gguf-write.ts';
import { writeMlc } from '../../tools/mlc-write.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const models = join(root, 'public', 'models');
const dir = mkdtempSync(join(tmpdir(), 'd2g-inspect-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

const fmt = (n: number) => n.toLocaleString('en-US');

/** Runs a command in this process and collects what it writes. */
async function run(
  cmd: (argv: string[]) => Promise<number>,
  ...args: string[]
): Promise<{ code: number; out: string }> {
  let out = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
    out += String(s);
    return true;
  });
  try {
    return { code: await cmd(args), out };
  } finally {
    vi.restoreAllMocks();
  }
}

async function failure(cmd: (argv: string[]) => Promise<number>, ...args: string[]): Promise<EngineError> {
  try {
    await run(cmd, ...args);
  } catch (e) {
    if (e instanceof EngineError) return e;
    throw e;
  }
  throw new Error('expected an EngineError');
}

/** `npm run d2g -- ...` as package.json runs it (for the exit codes d2g.ts gives). */
function d2g(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--import', './tools/raw-hooks.mjs', 'src/cli/d2g.ts', ...args],
    { cwd: root, encoding: 'utf8', timeout: 60_000 },
  );
  return { code: r.status, out: r.stdout, err: r.stderr };
}

// A Q4_K_M-style GGUF: matrices Q4_K, the classifier and layer 0's wv Q6_K, norms F32.
// Q4_K: 144 bytes per 256 values; Q6_K: 210 per 256. Rows of 256 and 512 are whole blocks.
const G: LlamaConfig = {
  dim: 256,
  hiddenDim: 512,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  vocabSize: 64,
  maxSeqLen: 128,
  ropeTheta: 10000,
  normEps: 1e-5,
  sharedClassifier: false,
};
// A q4f16_1 MLC folder (groups of 32: dim 64 and hidden 192 are whole groups).
const M: LlamaConfig = {
  dim: 64,
  hiddenDim: 192,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  vocabSize: 96,
  maxSeqLen: 64,
  ropeTheta: 10000,
  normEps: 1e-5,
  sharedClassifier: false,
};

const ggufPath = join(dir, 'tiny-q4_k_m.gguf');
const cutPath = join(dir, 'tiny-cut.gguf');
const mlcDir = join(dir, 'tiny-q4f16_1-MLC');
const otherPath = join(dir, 'other.gguf');
let gguf: Uint8Array;

beforeAll(() => {
  const tensors = llamaGgufTensors(G, randomLlamaWeights(G, 3), 'Q4_K').map((t) =>
    t.name === 'output.weight' || t.name === 'blk.0.attn_v.weight' ? { ...t, type: 'Q6_K' as const } : t,
  );
  const metadata = llamaGgufMetadata(G, 'Q4_K', { name: 'cli test' });
  metadata.set('general.file_type', meta.u32(15)); // MOSTLY_Q4_K_M
  gguf = writeGguf({ version: 3, metadata, tensors });
  writeFileSync(ggufPath, gguf);
  writeFileSync(cutPath, gguf.subarray(0, gguf.length - 1000));
  mkdirSync(mlcDir);
  for (const [name, bytes] of writeMlc(M, randomLlamaWeights(M, 4), { quantization: 'q4f16_1' }))
    writeFileSync(join(mlcDir, name), bytes);
  writeFileSync(join(mlcDir, 'tokenizer.json'), '{}');
  // a GGUF of another architecture
  writeFileSync(
    otherPath,
    writeGguf({
      version: 2,
      metadata: { 'general.architecture': meta.string('gpt2'), 'general.name': meta.string('x') },
      tensors: [{ name: 'w', type: 'F16', dims: [32, 2], data: new Float32Array(64) }],
    }),
  );
});

// The GGUF's tensor bytes, by hand. Per layer: wq, wo 256×256 (256 blocks of 256), wk, wv 128×256
// (128 blocks), w1, w3, w2 512×256 (512 blocks); token_embd and output 64×256 (64 blocks).
const q4k = (blocks: number) => blocks * 144;
const q6k = (blocks: number) => blocks * 210;
const layerQ4K = q4k(256 + 128 + 128 + 256 + 3 * 512); // 331,776
const Q4K_BYTES = q4k(64) + layerQ4K + (layerQ4K - q4k(128)); // token_embd, layer 1, layer 0 without wv
const Q6K_BYTES = q6k(64) + q6k(128); // output, layer 0's wv
const F32_BYTES = 5 * 256 * 4; // output_norm, 2 norms per layer

describe('d2g inspect', () => {
  it('a GGUF file: format, config, parameters, tensor types, tokenizer, general.*', async () => {
    expect([Q4K_BYTES, Q6K_BYTES, F32_BYTES]).toEqual([654_336, 40_320, 5120]);
    // 2·V·C + L·(2C + 2C² + 2C·KV + 3C·H) + C with C 256, KV 128, H 512, V 64, L 2
    const params = 2 * 64 * 256 + 2 * (2 * 256 + 2 * 256 * 256 + 2 * 256 * 128 + 3 * 256 * 512) + 256;
    expect(params).toBe(1_213_696);
    expect(paramCount(G)).toBe(params);
    const size = statSync(ggufPath).size;
    // metadata: 4 general.*, 9 llama.*, 7 tokenizer.ggml.* (tools/gguf-write.ts llamaGgufMetadata)
    const r = await run(inspectCommand, ggufPath);
    expect(r.code).toBe(0);
    expect(r.out).toBe(
      [
        'tiny-q4_k_m.gguf: GGUF version 3, alignment 32, 20 metadata entries',
        `  size         ${fmt(size)} bytes (${formatBytes(size)})`,
        '  config       dim 256, hidden 512, layers 2, heads 4, kv heads 2, vocab 64, context 128, rope theta 10,000, norm eps 1e-5, separate classifier',
        '  parameters   1,213,696 (1.21 M)',
        '  tensors      21, 683.4 KiB',
        '    Q4_K  14 tensors   639.0 KiB',
        '    Q6_K   2 tensors    39.4 KiB',
        '    F32    5 tensors     5.0 KiB',
        '  tokenizer    llama (SentencePiece), 64 tokens, bos 1, eos 2, unk 0 (from GGUF metadata tokenizer.ggml.*)',
        '  general',
        '    architecture          "llama"',
        '    name                  "cli test"',
        '    file_type             15 (MOSTLY_Q4_K_M)',
        '    quantization_version  2',
        '  dust2gold    can load it',
        '',
      ].join('\n'),
    );

    const j = JSON.parse((await run(inspectCommand, ggufPath, '--json')).out) as ModelReport;
    expect(j).toEqual({
      name: 'tiny-q4_k_m.gguf',
      format: 'gguf',
      formatDetail: 'GGUF version 3, alignment 32, 20 metadata entries',
      version: 3,
      bytes: size,
      config: G,
      parameters: params,
      tensors: 21,
      tensorBytes: Q4K_BYTES + Q6K_BYTES + F32_BYTES,
      types: [
        { type: 'Q4_K', tensors: 14, bytes: Q4K_BYTES },
        { type: 'Q6_K', tensors: 2, bytes: Q6K_BYTES },
        { type: 'F32', tensors: 5, bytes: F32_BYTES },
      ],
      tokenizer: {
        model: 'llama (SentencePiece)',
        vocabSize: 64,
        bos: 1,
        eos: 2,
        unk: 0,
        pad: null,
        source: 'GGUF metadata tokenizer.ggml.*',
      },
      general: { architecture: 'llama', name: 'cli test', file_type: 15, quantization_version: 2 },
      metadata: null,
      problem: null,
    });
  });

  it('a truncated GGUF: the reader’s TRUNCATED_FILE message (exit 1 through d2g)', async () => {
    const want = await readGgufHeader(fromBytes(gguf.subarray(0, gguf.length - 1000), 'tiny-cut.gguf')).then(
      () => null,
      (e: EngineError) => e,
    );
    expect(want?.code).toBe('TRUNCATED_FILE');
    expect(want?.message).toMatch(
      new RegExp(`^tiny-cut\\.gguf ends after ${fmt(gguf.length - 1000)} of ${fmt(gguf.length)} bytes`),
    );
    const e = await failure(inspectCommand, cutPath);
    expect([e.code, e.message]).toEqual(['TRUNCATED_FILE', want!.message]);
    const r = d2g('inspect', cutPath);
    expect(r).toEqual({ code: 1, out: '', err: `error (TRUNCATED_FILE): ${want!.message}\n` });
  });

  it('a GGUF dust2gold cannot run is still described, with the reason', async () => {
    const p = otherPath;
    const { report, weights } = await inspectModel(p);
    expect(weights).toBeNull();
    expect(report).toMatchObject({
      formatDetail: 'GGUF version 2, alignment 32, 2 metadata entries',
      config: null,
      parameters: 64,
      types: [{ type: 'F16', tensors: 1, bytes: 128 }],
      tokenizer: null,
      general: { architecture: 'gpt2', name: 'x' },
      problem: { code: 'BAD_FILE' },
    });
    expect(report.problem!.message).toContain('is a "gpt2" model');
    const out = (await run(inspectCommand, p)).out;
    expect(out).toContain('  tokenizer    none found\n');
    expect(out).toContain(`  dust2gold    cannot load it (BAD_FILE): ${report.problem!.message}\n`);
  });

  it('an MLC q4f16_1 folder (the folder, or its mlc-chat-config.json)', async () => {
    // q_weight: 8 uint32 per row of 64 (4 bits each), q_scale: 2 float16 per row (groups of 32);
    // down_proj rows of 192: 24 words, 6 scales. Rows: embed, lm_head 96; qkv 64 + 2·32; o 64;
    // gate_up 2·192; down 64.
    const words = 2 * 96 * 8 + 2 * (128 * 8 + 64 * 8 + 384 * 8 + 64 * 24);
    const scales = 2 * 96 * 2 + 2 * (128 * 2 + 64 * 2 + 384 * 2 + 64 * 6);
    expect([4 * words, 2 * scales]).toEqual([55_296, 6912]);
    const norms = 5 * 64 * 2; // float16
    const files = ['mlc-chat-config.json', 'tensor-cache.json', 'params_shard_0.bin'];
    const bytes = files.reduce((a, f) => a + statSync(join(mlcDir, f)).size, 0);
    const j = JSON.parse((await run(inspectCommand, mlcDir, '--json')).out) as ModelReport;
    expect(j).toMatchObject({
      name: 'tiny-q4f16_1-MLC',
      format: 'mlc',
      formatDetail: 'MLC LLM q4f16_1 (web-llm), tensor-cache.json, 1 shard',
      version: '0.1.0',
      bytes,
      config: M,
      parameters: paramCount(M),
      tensors: 25,
      tensorBytes: 4 * words + 2 * scales + norms,
      types: [
        { type: 'uint32', tensors: 10, bytes: 55_296 },
        { type: 'float16', tensors: 15, bytes: 6912 + norms },
      ],
      tokenizer: {
        model: 'tokenizer.json (Hugging Face)',
        vocabSize: 96,
        bos: null,
        eos: null,
        source: 'tokenizer.json',
      },
      general: null,
      metadata: { ParamSize: 25, ParamBytes: 4 * words + 2 * scales + norms },
      problem: null,
    });
    expect(paramCount(M)).toBe(110_912);
    const text = (await run(inspectCommand, join(mlcDir, 'mlc-chat-config.json'))).out;
    expect(text).toContain('tiny-q4f16_1-MLC: MLC LLM q4f16_1 (web-llm), tensor-cache.json, 1 shard\n');
    expect(text).toContain('    uint32   10 tensors    54.0 KiB\n    float16  15 tensors     7.4 KiB\n');
    expect(text).toContain('  parameters   110,912 (110.9 K)\n');
    expect(text).toContain(
      `  metadata     ParamSize 25, ParamBytes ${fmt(4 * words + 2 * scales + norms)}, BitsPerParam 4.533\n`,
    );
  });

  it('public/models: the llama2.c file and our safetensors model, whole or header only', async () => {
    const stories = join(models, 'stories260K.bin');
    const student = join(models, 'arith-student.safetensors');
    const a = await inspectModel(stories);
    expect(a.report).toMatchObject({
      format: 'llama2c',
      bytes: 1_056_540,
      config: PRESETS.stories260K!.config,
      parameters: 260_032,
      types: [
        { type: 'F32', tensors: 11, bytes: 4 * 260_032 },
        { type: 'F32 freq_cis (unused)', tensors: 2, bytes: 4 * 512 * 8 },
      ],
      tokenizer: null,
    });
    // header + weights + freq_cis is the whole file
    expect(28 + 4 * 260_032 + 4 * 512 * 8).toBe(1_056_540);
    expect((await inspectModel(stories, { wholeFileLimit: 0 })).report).toEqual(a.report);

    const b = await inspectModel(student);
    expect(b.report).toMatchObject({
      format: 'safetensors',
      config: PRESETS['arith-student']!.config,
      parameters: paramCount(PRESETS['arith-student']!.config),
      tensors: 11,
      types: [{ type: 'F32', tensors: 11, bytes: 4 * 206_208 }],
      tokenizer: {
        model: 'char',
        vocabSize: 77,
        bos: 1,
        eos: 2,
        pad: 0,
        source: 'arith-student.tokenizer.json',
      },
      problem: null,
    });
    expect((await inspectModel(student, { wholeFileLimit: 0 })).report).toEqual(b.report);

    // cut short: the engine's reader (whole file) and the header check (big files) both say so
    const cut = join(dir, 'stories-cut.bin');
    writeFileSync(cut, readFileSync(stories).subarray(0, 500_000));
    for (const wholeFileLimit of [1 << 28, 0]) {
      const e = await inspectModel(cut, { wholeFileLimit }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(EngineError);
      expect((e as EngineError).code).toBe('TRUNCATED_FILE');
      expect((e as EngineError).message).toMatch(/^stories-cut\.bin: the header describes a model of /);
    }
  });

  it('fromFile reads exact ranges and refuses reads past the end', async () => {
    const src = await fromFile(ggufPath);
    expect(src.size).toBe(gguf.length);
    expect(await src.read(100, 50)).toEqual(gguf.subarray(100, 150));
    await expect(src.read(gguf.length - 10, 20)).rejects.toMatchObject({ code: 'TRUNCATED_FILE' });
    await expect(fromFile(join(dir, 'none.gguf'))).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
  });
});

describe('d2g plan', () => {
  const GiB = 2 ** 30;
  const MiB = 2 ** 20;

  it('7b, q4_0, m = 16 × 1024, f16 KV: refused at 8 GiB with the largest m and context (exit 2)', () => {
    // plan.test.ts's hand computation: everything but the KV cache is 3,817,326,080 B; the rest of
    // 8 GiB holds 8 sequences of 1024 positions (0.5 MiB per token) or 568 positions for 16.
    const r = d2g(
      'plan',
      '--config',
      '7b',
      '--weights',
      'q4_0',
      '--m',
      '16',
      '--context',
      '1024',
      '--kv',
      'f16',
      '--budget',
      '8GiB',
    );
    expect(r.code).toBe(2);
    expect(r.err).toBe('');
    expect(r.out).toContain('  total          11.6 GiB  of a 8.0 GiB budget\n');
    expect(r.out).toContain(
      'refused (OUT_OF_MEMORY): Inference with 16 sequences × 1,024 positions needs 11.6 GiB (KV cache 8.0 GiB, weights 3.5 GiB, …) but the memory budget is 8.0 GiB',
    );
    expect(r.out).toMatch(
      /\nto fit, change one of:\n {2}--m 8 {10}at most 8 sequences at 1,024 positions \(7\.6 GiB\)\n {2}--context 568 {2}16 sequences at most 568 positions long \(8\.0 GiB\)\n$/,
    );
  });

  it('--json: the same figures; at 16 GiB it fits (exit 0)', async () => {
    const args = ['--config', '7b', '--m', '16', '--context', '1024', '--kv', 'f16', '--json'];
    const refused = await run(planCommand, ...args, '--budget', '8GiB');
    expect(refused.code).toBe(2);
    const j = JSON.parse(refused.out) as {
      items: { weights: number; kv: number; total: number };
      verdict: string;
      error: { code: string };
      suggestions: { kind: string; flag: string; total: number }[];
      model: { weights: unknown };
    };
    const rest = 3_817_326_080;
    expect(j.model.weights).toEqual({ matrices: 'q4_0' });
    expect([j.items.weights, j.items.kv, j.items.total]).toEqual([3_791_273_984, 8 * GiB, 12_407_260_672]);
    expect(j.verdict).toBe('refused');
    expect(j.error.code).toBe('OUT_OF_MEMORY');
    expect(j.suggestions.map((s) => [s.kind, s.flag, s.total])).toEqual([
      ['sequences', '--m 8', rest + 8 * 1024 * 0.5 * MiB],
      ['context', '--context 568', rest + 16 * 568 * 0.5 * MiB],
    ]);
    const ok = await run(planCommand, ...args, '--budget', '16GiB');
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.out)).toMatchObject({
      verdict: 'ok',
      error: null,
      suggestions: [],
      budget: 16 * GiB,
    });
  });

  it('--train: a 7B LoRA step at 512 tokens fits 8 GB with --recompute, not without', async () => {
    const args = [
      '--config',
      '7b',
      '--train',
      '--batch',
      '1',
      '--seq',
      '512',
      '--rank',
      '8',
      '--targets',
      'q,v',
    ];
    const on = await run(planCommand, ...args, '--recompute', '--budget', '8GB');
    expect(on.code).toBe(0);
    expect(on.out).toContain('LoRA training: 1 × 512 tokens, rank 8 on q,v, recompute on\n');
    expect(on.out).toContain('  total                 4.4 GiB  of a 7.5 GiB budget\n  fits\n');
    const off = await run(planCommand, ...args, '--budget', '8GB', '--json');
    expect(off.code).toBe(2);
    const j = JSON.parse(off.out) as {
      items: { total: number };
      suggestions: { kind: string; flag: string; total: number }[];
    };
    expect(j.items.total).toBe(18_481_969_668);
    expect(j.suggestions[0]).toEqual({
      kind: 'recompute',
      flag: '--recompute',
      total: 4_756_048_388,
      text: 'turn on recompute (gradient checkpointing) (4.4 GiB)',
    });
    expect(j.suggestions.find((s) => s.kind === 'seq')?.flag).toBe('--seq 160');
  });

  it('--train --stage: NAT and NCE count what they hold beside the trained LoRA', async () => {
    const args = ['--config', '7b', '--train', '--seq', '512', '--recompute', '--budget', '8GiB'];
    const nat = await run(planCommand, ...args, '--stage', 'nat');
    expect(nat.code).toBe(0);
    expect(nat.out).toContain(
      'NAT (positive LoRA and integration unit beside the frozen negative LoRA) training: 1 × 512 tokens',
    );
    expect(nat.out).toContain(
      '  adapters            544.0 MiB  positive LoRA, integration unit, frozen negative LoRA\n',
    );
    const nce = JSON.parse((await run(planCommand, ...args, '--stage', 'nce', '--json')).out) as {
      items: { logits: number; adapters: number };
    };
    // the student's logits and their gradient, and the two frozen models' logits: 4 × 512 × 32,000 f32
    expect(nce.items.logits).toBe(4 * 512 * 32000 * 4);
    // a narrower unit holds less
    const narrow = JSON.parse(
      (await run(planCommand, ...args, '--stage', 'nat', '--du', '64', '--json')).out,
    ) as {
      items: { adapters: number };
    };
    const wide = JSON.parse((await run(planCommand, ...args, '--stage', 'nat', '--json')).out) as {
      items: { adapters: number };
    };
    expect(wide.items.adapters - narrow.items.adapters).toBe(4 * 64 * 4 * 4096 * 2 * 32);
  });

  it('--model: weight types per tensor from a GGUF and an MLC folder', async () => {
    const g = JSON.parse(
      (await run(planCommand, '--model', ggufPath, '--m', '2', '--context', '64', '--json')).out,
    );
    expect(g.model).toMatchObject({ source: 'gguf', name: 'tiny-q4_k_m.gguf', config: G });
    // as the GPU loader stores them: the Q4_K embedding is gathered from q8_0 (load-gguf.ts)
    expect(g.model.weights).toEqual({
      matrices: 'q4_k',
      tensors: { tok_embeddings: 'q8_0', output: 'q6_k', 'layers.0.wv': 'q6_k' },
    });
    // the planner's weight bytes: the file's tensor bytes, the embedding as q8_0 (34 B per 32 values)
    expect(g.items.weights).toBe(Q4K_BYTES - q4k(64) + (64 * 256 * 34) / 32 + Q6K_BYTES + F32_BYTES);
    expect(g.verdict).toBe('ok');

    const m = JSON.parse((await run(planCommand, '--model', mlcDir, '--m', '2', '--json')).out);
    expect(m.model.weights).toEqual({ matrices: 'q4_0' });
    expect(m.request).toMatchObject({ kind: 'inference', sequences: 2, context: 64, act: 'f32' });
    // q4f16_1 (16 B of nibbles + an f16 scale per 32 values) is q4_0's 18 B per 32: 55,296 + 6,912
    // bytes of matrices, and 5 norms of 64 f32.
    expect(m.items.weights).toBe(55_296 + 6912 + 5 * 64 * 4);
  });

  it('--weights on a small model keeps the rows that are not whole blocks in f32 (as loadLlama)', async () => {
    const j = JSON.parse(
      (await run(planCommand, '--config', 'stories260K', '--weights', 'q4_0', '--m', '1', '--json')).out,
    );
    expect(j.model.weights).toEqual({ matrices: 'q4_0', sites: { w2: 'f32' } });
    // embedding 512×64 q4_0; per layer wq, wo 64×64, wk, wv 32×64, w1, w3 172×64 in q4_0, w2
    // 64×172 in f32, 2 norms; the final norm; the classifier is the embedding.
    const q4 = (n: number) => (n / 32) * 18;
    const layer = q4(2 * 4096 + 2 * 2048 + 2 * 11008) + 4 * 11008 + 2 * 64 * 4;
    expect(j.items.weights).toBe(q4(512 * 64) + 5 * layer + 64 * 4);
    expect(j.items.weights).toBe(337_888);
  });

  it('bad arguments are BAD_ARGUMENT, and a bad --model file is the reader’s error', async () => {
    const cases: [string[], string][] = [
      [['--config', '70b'], '--config is one of 7b, 13b, stories260K, arith-student, got "70b"'],
      [[], 'plan needs either --model FILE_OR_DIR or --config 7b|13b|stories260K|arith-student'],
      [
        ['--config', '7b', '--train', '--m', '4'],
        '--m is for inference; a training plan takes --batch, --seq, --rank, --targets, --recompute, --stage',
      ],
      [['--config', '7b', '--stage', 'nat'], '--stage is for a training plan: add --train'],
      [
        ['--config', '7b', '--train', '--stage', 'natt'],
        '--stage is one of kd, neg, mix, nat, linmix, nce, rank, nt, ul, cl; got "natt"',
      ],
      [
        ['--config', '7b', '--train', '--stage', 'kd', '--du', '64'],
        "--du is the NAT integration unit's width: use it with --stage nat or --stage nce",
      ],
      [['--config', '7b', '--recompute'], '--recompute is for a training plan: add --train'],
      [
        ['--config', '7b', '--budget', '8XB'],
        '--budget expects a size such as 8GiB, 8GB, 512MiB or a number of bytes, got "8XB"',
      ],
      [
        ['--config', '7b', '--train', '--targets', 'q,x'],
        '--targets takes a comma-separated list of q, k, v, o, gate, up, down; "x" is not one',
      ],
      [
        ['--config', '7b', '--weights', 'q5_k'],
        '--weights is one of f32, f16, q8_0, q4_0, q4_k, q6_k, got "q5_k"',
      ],
      [['--config', '7b', '--m', '0'], '--m expects a whole number ≥ 1, got "0"'],
    ];
    for (const [args, message] of cases) {
      expect(await failure(planCommand, ...args)).toMatchObject({ code: 'BAD_ARGUMENT', message });
    }
    expect(await failure(planCommand, '--model', cutPath)).toMatchObject({ code: 'TRUNCATED_FILE' });
    // a model inspect describes but dust2gold cannot run: inspect's reason
    const other = await failure(planCommand, '--model', otherPath);
    expect(other.code).toBe('BAD_FILE');
    expect(other.message).toContain('is a "gpt2" model');
  });
});
