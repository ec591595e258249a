import { describe, expect, it } from 'vitest';
import { EngineError, formatBytes } from '../../src/engine/errors.ts';
import { LlamaRunner } from '../../src/engine/infer/runner.ts';
import { LLAMA_7B, type LlamaConfig } from '../../src/engine/model/config.ts';
import { loadLlama } from '../../src/engine/model/llama.ts';
import { createLora } from '../../src/engine/model/lora.ts';
import { randomLlamaWeights } from '../../src/engine/model/random.ts';
import {
  DEFAULT_MEMORY_BUDGET,
  WEBGPU_DEFAULT_LIMITS,
  formatPlan,
  planMemory,
  requirePlan,
  type DeviceLimits,
  type InferenceRequest,
  type TrainingRequest,
} from '../../src/engine/plan.ts';
import { DEFAULT_ADAMW } from '../../src/engine/train/adamw.ts';
import { LoraTrainer } from '../../src/engine/train/trainer.ts';
import { CountingCpu } from '../helpers/backends.ts';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

/** A GPU that binds 2 GiB (what desktop adapters report), with a stated budget. */
const big = (memoryBudget: number): DeviceLimits => ({
  maxBufferSize: 4 * GiB,
  maxStorageBufferBindingSize: 2 * GiB - 4,
  memoryBudget,
});

/** Bytes of `values` values in q4_0: 18 bytes per block of 32. */
const q4 = (values: number) => (values / 32) * 18;

describe('LLaMA-7b q4_0 inference at m = 16, context 1024 (the hand computation)', () => {
  const req: InferenceRequest = {
    kind: 'inference',
    config: LLAMA_7B,
    // Every matrix q4_0 — token embedding and classifier included — and every norm f32.
    weights: { matrices: 'q4_0' },
    act: 'f16',
    sequences: 16,
    context: 1024,
    limits: big(16 * GiB),
  };

  it('weights ≈ 3.8 GB, KV cache 0.5 MiB per token per sequence, and the rest item by item', () => {
    const plan = planMemory(req);
    // Weights: per layer wq, wk, wv, wo are 4096×4096 and w1, w3, w2 4096×11008 values, q4_0 =
    // 18 bytes per 32 values; embedding and classifier 32000×4096 each, q4_0; 2 norms per layer
    // and the final norm, 4096 f32 each.
    const perLayer = 4 * 4096 * 4096 + 3 * 4096 * 11008; // 202,375,168 values
    expect(perLayer).toBe(202_375_168);
    const weights = 32 * q4(perLayer) + 2 * q4(32000 * 4096) + (2 * 32 + 1) * 4096 * 4;
    expect(weights).toBe(32 * 113_836_032 + 2 * 73_728_000 + 1_064_960);
    expect(weights).toBe(3_791_273_984); // 3.79 GB = 3.53 GiB
    expect(plan.items.weights).toBe(weights);
    expect(plan.items.weights / 1e9).toBeCloseTo(3.8, 1);

    // KV cache: k and v, 32 layers, 4096 wide, f16 = 524,288 B = 0.5 MiB per token per sequence.
    const perToken = 2 * 32 * 4096 * 2;
    expect(perToken).toBe(0.5 * MiB);
    expect(plan.items.kv).toBe(perToken * 16 * 1024);
    expect(plan.items.kv).toBe(8 * GiB);

    // The runner's buffers for R = max(64, m) = 64 rows: h, q, att, o, k, v (R×4096), g, u, s
    // (R×11008) in f16; the residual stream x and its selected rows sel (R×4096) and rstd (R) in
    // f32; logits R×32000 f32.
    expect(plan.items.activations).toBe(64 * (6 * 4096 + 3 * 11008) * 2 + 64 * 2 * 4096 * 4 + 64 * 4);
    expect(plan.items.activations).toBe(9_470_208);
    expect(plan.items.logits).toBe(64 * 32000 * 4);
    // Scratch: tokens, positions, outIdx (R) and rowInfo (2R) u32; the logits' readback staging,
    // bucket(8,192,000) = 8 × 1 MiB (quarter-power-of-two buckets above 64 KiB).
    expect(plan.items.scratch).toBe(5 * 64 * 4 + 8 * MiB);
    expect(plan.items.adapters + plan.items.optimizer + plan.items.gradients + plan.items.recompute).toBe(0);
    expect(plan.items.total).toBe(weights + 8 * GiB + 9_470_208 + 8_192_000 + 1280 + 8 * MiB);
    expect(plan.items.total).toBe(12_407_260_672);
    expect(plan.verdict).toBe('ok');
    expect(plan.error).toBeNull();
    expect(plan.splits).toEqual([]);
    expect(requirePlan(plan)).toBe(plan);

    expect(formatPlan(plan)).toBe(
      [
        'inference: 16 × 1,024 positions, f16 activations/KV',
        '  weights         3.5 GiB  226 × q4_0, 65 × f32',
        '  KV cache        8.0 GiB  0.5 MiB per token per sequence',
        '  activations     9.0 MiB',
        '  logits          7.8 MiB  64 rows × 32,000 f32',
        '  scratch         8.0 MiB',
        '  total          11.6 GiB  of a 16.0 GiB budget',
        '  fits',
      ].join('\n'),
    );
  });

  it('in an 8 GiB budget it is refused with the largest m and the longest context that fit', () => {
    const plan = planMemory({ ...req, limits: big(8 * GiB) });
    expect(plan.verdict).toBe('refused');
    expect(plan.error).toBeInstanceOf(EngineError);
    expect(plan.error!.code).toBe('OUT_OF_MEMORY');
    // Everything but the KV cache: 3,817,326,080 B. What is left of 8 GiB holds
    // floor(4,772,608,512 / (1024 × 0.5 MiB)) = 8 sequences of 1024 positions, or
    // floor(4,772,608,512 / (16 × 0.5 MiB)) = 568 positions for 16 sequences.
    const rest = 3_791_273_984 + 9_470_208 + 8_192_000 + 1280 + 8 * MiB;
    expect(rest).toBe(3_817_326_080);
    const free = 8 * GiB - rest;
    expect(free).toBe(4_772_608_512);
    expect(Math.floor(free / (1024 * 0.5 * MiB))).toBe(8);
    expect(Math.floor(free / (16 * 0.5 * MiB))).toBe(568);
    expect(plan.suggestions.map((s) => s.kind)).toEqual(['sequences', 'context']);
    expect(plan.suggestions[0]).toMatchObject({ sequences: 8, total: rest + 8 * 1024 * 0.5 * MiB });
    expect(plan.suggestions[1]).toMatchObject({ context: 568, total: rest + 16 * 568 * 0.5 * MiB });
    const over = 12_406_212_096 - 8 * GiB;
    expect(plan.error!.message).toBe(
      `Inference with 16 sequences × 1,024 positions needs 11.6 GiB (KV cache 8.0 GiB, weights 3.5 GiB, …) but the memory budget is 8.0 GiB: ${formatBytes(over)} over. To fit: at most 8 sequences at 1,024 positions (7.6 GiB); or 16 sequences at most 568 positions long (8.0 GiB).`,
    );
    expect(() => requirePlan(plan)).toThrow(plan.error!);
    // The suggestions are the largest that fit: one more does not.
    expect(planMemory({ ...req, sequences: 8, limits: big(8 * GiB) }).verdict).toBe('ok');
    expect(planMemory({ ...req, sequences: 9, limits: big(8 * GiB) }).verdict).toBe('refused');
    expect(planMemory({ ...req, context: 568, limits: big(8 * GiB) }).verdict).toBe('ok');
    expect(planMemory({ ...req, context: 570, limits: big(8 * GiB) }).verdict).toBe('refused');
  });

  it('with an f32 KV cache it also suggests an f16 one (any GPU: two halves per u32)', () => {
    const plan = planMemory({ ...req, act: 'f32', sequences: 8, limits: big(8 * GiB) });
    expect(plan.items.kv).toBe(8 * GiB); // 1 MiB per token per sequence × 8 × 1024
    const f16 = plan.suggestions.find((s) => s.kind === 'kvF16');
    const withF16 = planMemory({ ...req, act: 'f32', kv: 'f16', sequences: 8, limits: big(8 * GiB) });
    expect(withF16.items.kv).toBe(4 * GiB);
    expect(f16?.total).toBe(withF16.items.total);
    expect(plan.error!.message).toContain(`an f16 KV cache, half the bytes (${formatBytes(f16!.total)})`);
  });
});

describe('a 7B LoRA step at 512 tokens with a q4_0 base', () => {
  const N = 512,
    C = 4096,
    H = 11008,
    V = 32000,
    R = 8;
  const req: TrainingRequest = {
    kind: 'training',
    config: LLAMA_7B,
    weights: { matrices: 'q4_0' },
    batch: 1,
    seq: 512,
    // METHOD.md's LoRA: q and v, rank 8, dropout 0.05.
    lora: { rank: R, targets: ['q', 'v'], dropout: 0.05 },
    recompute: true,
    limits: big(8e9),
  };
  // One f32 row block of each width: N×C = 8 MiB, N×H = 22,544,384 B, N×R, and the attention
  // probabilities B×NH×T×T = 32 MiB.
  const nc = N * C * 4,
    nh = N * H * 4,
    nr = N * R * 4,
    att = 32 * N * N * 4;

  it('with recompute it fits in 8 GB: the itemised figures, computed by hand', () => {
    const plan = planMemory(req);
    const t = plan.training!;
    // What one layer's forward keeps (autograd/ops.ts, train/forward.ts), for a layer whose input
    // needs a gradient: rmsnorm out + rstd, q (+ its dropout copy and rank-8 u), rope(q), k,
    // rope(k), v (+ dropout copy, u), attention out + probabilities, wo, residual add, rmsnorm out
    // + rstd, w1, w3, swiglu, w2, residual add.
    const forward = 11 * nc + 3 * nc /* k-width = C for 7B */ + 3 * nh + 2 * nr + 2 * N * 4 + att;
    expect(t.layerForward).toBe(forward);
    expect(t.layerForward).toBe(218_664_960);
    // Its backward: a gradient for every activation above but the rstds, dropout copies, u's and
    // the probabilities (11 C-wide incl. the layer input's, 3 k/v-wide, 3 H-wide), plus per LoRA
    // site d_lora_u and d_drop, plus datt.
    const backward = 11 * nc + 3 * nc + 3 * nh + 2 * nr + att;
    expect(t.layerBackward).toBe(backward);
    // The head: final rmsnorm out + rstd, logits, their gradient, losses, d(hidden), d(residual).
    const logits = 2 * N * V * 4;
    expect(t.head).toBe(nc + N * 4 + logits + N * 4 + 2 * nc);
    expect(t.checkpoints).toBe(33 * nc);

    const params = 32 * 2 * R * (C + C); // r·(in+out) per site, q and v, 32 layers
    expect(t.adapterParams).toBe(params);
    expect(t.adapterParams).toBe(4_194_304);
    expect(plan.items).toMatchObject({
      weights: 3_791_273_984,
      kv: 0,
      activations: 33 * nc + (nc + N * 4 + N * 4 + 2 * nc),
      logits,
      adapters: 4 * params,
      gradients: 4 * params,
      optimizer: 2 * 4 * params + 4 * 128 + 4, // AdamW m, v; per-tensor norms; the NaN flag
      recompute: forward + backward + nc, // one layer re-run, and the carried gradient
    });
    // Scratch: batch inputs 4 × N × 4 B; the readback staging (bucket 2 KiB); the pool's rounding:
    // N×H buffers (22,544,384 B) sit in 24 MiB buckets, the logits (65,536,000 B) in 64 MiB ones.
    const poolSlack = 6 * (24 * MiB - nh) + 2 * (64 * MiB - N * V * 4);
    expect(t.poolSlack).toBe(poolSlack);
    expect(plan.items.scratch).toBe(4 * N * 4 + 2048 + poolSlack);
    expect(plan.items.total).toBe(4_756_048_388); // 4.76 GB = 4.43 GiB
    expect(plan.items.total).toBeLessThanOrEqual(8e9);
    expect(plan.verdict).toBe('ok');

    const table = formatPlan(plan);
    expect(table).toContain(
      'recompute buffers   425.1 MiB  one layer re-run: 208.5 MiB forward, 208.5 MiB backward',
    );
    expect(table).toContain('total                 4.4 GiB  of a 7.5 GiB budget');
  });

  it('the per-layer list is what the tape allocates (labels from ops.ts)', () => {
    const t = planMemory(req).training!;
    const fwd = t.layerTensors.filter((x) => x.phase === 'forward').map((x) => `${x.label}×${x.count}`);
    expect(fwd.sort()).toEqual(
      [
        'add×2',
        'att×1',
        'attn×1',
        'l.w1×1',
        'l.w2×1',
        'l.w3×1',
        'l.wk×1',
        'l.wo×1',
        'l.wq.drop×1',
        'l.wq.lora_u×1',
        'l.wq×1',
        'l.wv.drop×1',
        'l.wv.lora_u×1',
        'l.wv×1',
        'rmsnorm×2',
        'rope×2',
        'rstd×2',
        'swiglu×1',
      ].sort(),
    );
  });

  it('without recompute it does not fit, and the refusal says to turn recompute on', () => {
    const plan = planMemory({ ...req, recompute: false });
    const t = plan.training!;
    // The tape keeps every layer's tensors and their gradients until the step ends. The first
    // layer's input needs no gradient: it lacks d(h), d(x0), d(wk) and the two d_drop (5 N×C).
    expect(t.firstLayer).toBe(t.layerForward + t.layerBackward - 5 * nc);
    expect(plan.items.activations + plan.items.logits).toBe(
      nc /* embedding output */ + t.firstLayer + 31 * (t.layerForward + t.layerBackward) + t.head,
    );
    expect(plan.items.activations).toBe(13_986_041_856);
    expect(plan.items.recompute).toBe(0);
    // Pool rounding of 6 N×H buffers per layer (and the logits): 483 MiB.
    expect(t.poolSlack).toBe(32 * 6 * (24 * MiB - nh) + 2 * (64 * MiB - N * V * 4));
    expect(plan.items.total).toBe(18_481_969_668); // 18.5 GB = 17.2 GiB
    expect(plan.verdict).toBe('refused');
    expect(plan.error!.code).toBe('OUT_OF_MEMORY');
    expect(plan.suggestions[0]).toEqual({
      kind: 'recompute',
      total: 4_756_048_388,
      text: 'turn on recompute (gradient checkpointing) (4.4 GiB)',
    });
    const seq = plan.suggestions.find((s) => s.kind === 'seq');
    expect(seq).toMatchObject({ seq: 160 });
    expect(planMemory({ ...req, recompute: false, seq: 160 }).verdict).toBe('ok');
    expect(planMemory({ ...req, recompute: false, seq: 161 }).verdict).toBe('refused');
    expect(plan.error!.message).toMatch(
      /^A LoRA training step on 1 × 512 tokens needs 17\.2 GiB \(activations 13\.0 GiB, weights 3\.5 GiB, …\) but the memory budget is 7\.5 GiB: 9\.8 GiB over\. To fit: turn on recompute \(gradient checkpointing\) \(4\.4 GiB\); or sequences of at most 160 tokens at batch 1/,
    );
  });

  it('all seven targets at rank 16 still fit with recompute', () => {
    const plan = planMemory({
      ...req,
      lora: { rank: 16, targets: ['q', 'k', 'v', 'o', 'gate', 'up', 'down'], dropout: 0.05 },
    });
    // r·(in+out): q, k, v, o 16·8192 each; gate, up, down 16·15104 each; × 32 layers.
    expect(plan.training!.adapterParams).toBe(32 * (4 * 16 * 8192 + 3 * 16 * (4096 + 11008)));
    expect(plan.training!.adapterParams).toBe(39_976_960);
    expect(plan.verdict).toBe('ok');
    expect(plan.items.total).toBeLessThanOrEqual(8e9);
  });
});

describe('tensors split across bindings', () => {
  it('the f32 32000×4096 embedding at a 128 MiB binding limit goes into 4 parts of 8192 rows', () => {
    const plan = planMemory({
      kind: 'inference',
      config: LLAMA_7B,
      weights: { matrices: 'q4_0', tokenEmbedding: 'f32' },
      act: 'f32',
      sequences: 16,
      context: 1024,
      limits: { ...WEBGPU_DEFAULT_LIMITS, memoryBudget: 24 * GiB },
    });
    // 32000 rows × 16 KiB = 500 MiB; 128 MiB / 16 KiB = 8192 rows a part; ⌈32000 / 8192⌉ = 4.
    // The f32 KV cache of a layer, 16 × 1024 × 4096 × 4 B = 256 MiB, goes into 2 parts of 8
    // sequences. The q4_0 classifier (70.3 MiB) and w1 (24.2 MiB) fit one binding each.
    expect(plan.bindingLimit).toBe(128 * MiB);
    expect(plan.splits).toEqual([
      {
        name: 'tok_embeddings',
        count: 1,
        type: 'f32',
        rows: 32000,
        rowBytes: 16384,
        bytes: 524_288_000,
        parts: 4,
        rowsPerPart: 8192,
      },
      {
        name: 'kcache.*',
        count: 32,
        type: 'f32',
        rows: 16,
        rowBytes: 1024 * 4096 * 4,
        bytes: 256 * MiB,
        parts: 2,
        rowsPerPart: 8,
      },
      {
        name: 'vcache.*',
        count: 32,
        type: 'f32',
        rows: 16,
        rowBytes: 1024 * 4096 * 4,
        bytes: 256 * MiB,
        parts: 2,
        rowsPerPart: 8,
      },
    ]);
    expect(plan.verdict).toBe('ok');
    expect(formatPlan(plan)).toContain('split tok_embeddings (500.0 MiB) into 4 parts of ≤ 8,192 rows');
    expect(formatPlan(plan)).toContain('split 32 × kcache.* (256.0 MiB) into 2 parts of ≤ 8 rows');
  });

  it('a row of the KV cache over the limit cannot be split: LIMIT_EXCEEDED with a shorter context', () => {
    const plan = planMemory({
      kind: 'inference',
      config: LLAMA_7B,
      weights: { matrices: 'q4_0' },
      act: 'f32',
      sequences: 4,
      context: 2048,
      limits: { maxBufferSize: 16 * MiB, maxStorageBufferBindingSize: 16 * MiB, memoryBudget: 64 * GiB },
    });
    // One sequence's f32 cache per layer: 2048 × 4096 × 4 B = 32 MiB > 16 MiB.
    expect(plan.oversize).toEqual([
      { name: 'kcache.*', bytes: 32 * MiB, limit: 16 * MiB, row: true },
      { name: 'vcache.*', bytes: 32 * MiB, limit: 16 * MiB, row: true },
    ]);
    expect(plan.error!.code).toBe('LIMIT_EXCEEDED');
    expect(plan.suggestions.map((s) => s.kind)).toEqual(['context', 'kvF16']);
    expect(plan.error!.message).toMatch(
      /^Inference with 4 sequences × 2,048 positions needs rows of "kcache\.\*" \(and 1 more\) of 32\.0 MiB each, but this GPU binds at most 16\.0 MiB per buffer \(16\.0 MiB over\)\. To fit: 4 sequences at most 1,024 positions long \(.* GiB\); or an f16 KV cache, half the bytes/,
    );
    // The weights over 16 MiB are split instead: the classifier, the embedding, w1, w2, w3.
    expect(plan.splits.map((s) => `${s.name}:${s.parts}`).sort()).toEqual(
      ['layers.*.w1:2', 'layers.*.w2:2', 'layers.*.w3:2', 'output:5', 'tok_embeddings:5'].sort(),
    );
  });

  it('training buffers bound whole (attention probabilities, logits) over the limit: a smaller batch', () => {
    const plan = planMemory({
      kind: 'training',
      config: LLAMA_7B,
      weights: { matrices: 'q4_0' },
      batch: 4,
      seq: 1024,
      lora: { rank: 8, targets: ['q', 'v'] },
      recompute: true,
      limits: { ...WEBGPU_DEFAULT_LIMITS, memoryBudget: 64 * GiB },
    });
    // att = 4 × 32 × 1024 × 1024 × 4 B = 512 MiB; logits 4096 × 32000 × 4 B in a 512 MiB bucket;
    // the 4096 × 11008 f32 FFN activations (w1, w3, swiglu and their gradients, 172 MiB)
    // in 192 MiB ones.
    expect(plan.oversize.map((o) => `${o.name}:${o.bytes / MiB}`).sort()).toEqual(
      [
        'att:512',
        'datt:512',
        'classifier:512',
        'd(classifier):512',
        'l.w1:192',
        'l.w3:192',
        'swiglu:192',
        'd(l.w1):192',
        'd(l.w3):192',
        'd(swiglu):192',
      ].sort(),
    );
    expect(plan.error!.code).toBe('LIMIT_EXCEEDED');
    // Batch 1: att is exactly 128 MiB, the logits' bucket too. Batch 4: the logits limit sequences to
    // ⌊128 MiB / (4 × 32000 × 4 B)⌋ = 262 tokens (att then needs ≤ 512).
    expect(Math.floor((128 * MiB) / (4 * 32000 * 4))).toBe(262);
    expect(plan.suggestions.map((s) => [s.kind, 'batch' in s ? s.batch : 'seq' in s ? s.seq : null])).toEqual(
      [
        ['batch', 1],
        ['seq', 262],
      ],
    );
    expect(plan.error!.message).toContain('this GPU binds at most 128.0 MiB per buffer (384.0 MiB over)');
    expect(plan.error!.message).toContain('To fit: a batch of at most 1 sequence of 1,024 tokens');
  });
});

describe('budgets and weight types', () => {
  it('without a budget it assumes 4 GiB and says so', () => {
    const plan = planMemory({
      kind: 'inference',
      config: LLAMA_7B,
      weights: { matrices: 'q4_0' },
      act: 'f16',
      sequences: 4,
      context: 1024,
      limits: WEBGPU_DEFAULT_LIMITS,
    });
    expect(plan.budget).toBe(DEFAULT_MEMORY_BUDGET);
    expect(plan.budgetAssumed).toBe(true);
    expect(plan.items.kv).toBe(2 * GiB);
    expect(plan.error!.code).toBe('OUT_OF_MEMORY');
    expect(plan.error!.message).toContain(
      '(4.0 GiB is an assumption: WebGPU does not report GPU memory; if your GPU has more, set the memory budget.)',
    );
    // Not even one sequence of 1024 positions fits next to the 3.8 GB of weights; 4 sequences fit
    // ⌊(4 GiB − 3,817,326,080 B) / (4 × 0.5 MiB)⌋ = 227 positions.
    expect(Math.floor((4 * GiB - 3_817_326_080) / (4 * 0.5 * MiB))).toBe(227);
    expect(plan.suggestions[0]).toMatchObject({ kind: 'context', context: 227 });
    expect(formatPlan(plan)).toContain('of a 4.0 GiB budget (assumed: WebGPU does not report GPU memory)');
  });

  it('f16 weights that do not fit: a more compact quantization is suggested', () => {
    const plan = planMemory({
      kind: 'inference',
      config: LLAMA_7B,
      weights: { matrices: 'f16' },
      act: 'f16',
      sequences: 1,
      context: 256,
      limits: big(8 * GiB),
    });
    // f16: 2 B/value, 6,738,149,376 matrix values → 13.5 GB; q8_0 (34 B / 32) is 7.16 GB and fits.
    const values = 32 * 202_375_168 + 2 * 32000 * 4096;
    expect(plan.items.weights).toBe(2 * values + 1_064_960);
    const q = plan.suggestions.find((s) => s.kind === 'quantization');
    expect(q).toMatchObject({ type: 'q8_0' });
    expect(q!.total).toBe(
      planMemory({
        kind: 'inference',
        config: LLAMA_7B,
        weights: { matrices: 'q8_0' },
        act: 'f16',
        sequences: 1,
        context: 256,
        limits: big(8 * GiB),
      }).items.total,
    );
    expect(plan.error!.message).toContain('To fit: q8_0 weights (');
  });

  it('a model too large at any setting is refused with nothing to shrink but the model', () => {
    const llama13b: LlamaConfig = {
      ...LLAMA_7B,
      dim: 5120,
      hiddenDim: 13824,
      nLayers: 40,
      nHeads: 40,
      nKvHeads: 40,
    };
    const plan = planMemory({
      kind: 'inference',
      config: llama13b,
      weights: { matrices: 'q4_0' },
      sequences: 1,
      context: 64,
      limits: big(4 * GiB),
    });
    expect(plan.suggestions).toEqual([]);
    expect(plan.error!.message).toContain(
      `Nothing smaller of this model fits: the weights alone take ${formatBytes(plan.items.weights)}; choose a smaller model or a GPU with more memory.`,
    );
  });

  it('Q4_K_M-style mixed types: per class and per tensor', () => {
    const mixed: Record<string, 'q6_k'> = {};
    for (let l = 0; l < 32; l += 2) mixed[`layers.${l}.wv`] = mixed[`layers.${l}.w2`] = 'q6_k';
    const plan = planMemory({
      kind: 'inference',
      config: LLAMA_7B,
      weights: { matrices: 'q4_k', wcls: 'q6_k', tensors: mixed },
      act: 'f16',
      sequences: 1,
      context: 512,
      limits: big(8 * GiB),
    });
    // q4_k: 144 B per 256 values; q6_k: 210 B per 256.
    const k4 = (n: number) => (n / 256) * 144,
      k6 = (n: number) => (n / 256) * 210;
    const wv = 4096 * 4096,
      w2 = 4096 * 11008;
    const layer4 = k4(4 * 4096 * 4096 + 3 * 4096 * 11008);
    const expected =
      k4(32000 * 4096) + // token_embd q4_k
      k6(32000 * 4096) + // output q6_k
      32 * layer4 +
      16 * (k6(wv) - k4(wv) + k6(w2) - k4(w2)) + // every other layer's wv and w2 in q6_k
      65 * 4096 * 4;
    expect(plan.items.weights).toBe(expected);
    expect(formatPlan(plan)).toContain('193 × q4_k, 65 × f32, 33 × q6_k');
  });

  it('malformed requests are BAD_ARGUMENT', () => {
    const base: InferenceRequest = {
      kind: 'inference',
      config: LLAMA_7B,
      weights: { matrices: 'q4_0' },
      sequences: 1,
      context: 4096,
      limits: big(8 * GiB),
    };
    expect(() => planMemory(base)).toThrow(
      expect.objectContaining({
        code: 'BAD_ARGUMENT',
        message: "a context of 4,096 positions is longer than this model's 2,048; ask for at most 2,048.",
      }),
    );
    const tiny: LlamaConfig = { ...LLAMA_7B, dim: 64, hiddenDim: 160, nHeads: 4, nKvHeads: 4, nLayers: 2 };
    expect(() => planMemory({ ...base, config: tiny, context: 16, weights: { matrices: 'q4_k' } })).toThrow(
      expect.objectContaining({
        code: 'BAD_ARGUMENT',
        message: expect.stringContaining('tok_embeddings: a row of 64 values cannot be stored as q4_k'),
      }),
    );
    expect(() => planMemory({ ...base, context: 16, sequences: 0 })).toThrow(
      expect.objectContaining({ code: 'BAD_ARGUMENT' }),
    );
  });
});

describe("the planner's figures are the engine's allocations (a small GQA model on the CPU)", () => {
  const config: LlamaConfig = {
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
  const weights = randomLlamaWeights(config, 7);
  const lora = {
    rank: 4,
    alpha: 8,
    dropout: 0.1,
    targets: ['q' as const, 'k' as const, 'gate' as const, 'down' as const],
  };

  it('inference: what LlamaRunner allocates (f32), with a LoRA', () => {
    const be = new CountingCpu();
    const model = loadLlama(be, config, weights);
    const weightBytes = be.dedicated;
    const runner = new LlamaRunner(model, { slots: 3, maxT: 20, maxRows: 8 });
    const runnerBytes = be.dedicated - weightBytes;
    const adapter = createLora(be, config, lora, 1);
    runner.setAdapter(adapter);
    const adapterBytes = be.dedicated - weightBytes - runnerBytes;
    const plan = planMemory({
      kind: 'inference',
      config,
      weights: { matrices: 'f32' },
      sequences: 3,
      context: 20,
      maxRows: 8,
      adapters: [lora],
      limits: big(GiB),
    });
    expect(plan.items.weights).toBe(weightBytes);
    // The runner: KV cache, activations, logits and the u32 index buffers (scratch less staging).
    const staging = plan.items.scratch - 5 * 8 * 4 - 8 * 4 * 4;
    expect(runnerBytes).toBe(plan.items.kv + plan.items.activations + plan.items.logits + 5 * 8 * 4);
    expect(staging).toBe(3072); // bucket(8 × 96 × 4 B): 256-byte steps below 64 KiB
    // The adapter: values and gradients (loadLora), and the runner's u scratch (8 rows × rank 4).
    expect(adapterBytes).toBe(plan.items.adapters + plan.items.gradients + 8 * 4 * 4);
  });

  it('inference: what LlamaRunner allocates with f16 activations (and so an f16 KV cache), with a LoRA', () => {
    // A counting backend that says it can hold f16 tensors (the runner only allocates here).
    const be = new (class extends CountingCpu {
      override readonly f16 = true;
    })();
    const model = loadLlama(be, config, weights);
    const weightBytes = be.dedicated;
    const runner = new LlamaRunner(model, { slots: 3, maxT: 20, maxRows: 8, act: 'f16' });
    expect(runner.kv).toBe('f16');
    const runnerBytes = be.dedicated - weightBytes;
    const adapter = createLora(be, config, lora, 1);
    const adapterOwn = be.dedicated - weightBytes - runnerBytes;
    runner.setAdapter(adapter);
    // setAdapter: the u scratch (8 rows × rank 4) and the two f32 staging rows for the sites
    const staging = 2 * 8 * Math.max(config.dim, config.hiddenDim) * 4;
    expect(be.dedicated - weightBytes - runnerBytes - adapterOwn).toBe(8 * 4 * 4 + staging);
    const req = {
      kind: 'inference',
      config,
      weights: { matrices: 'f32' },
      sequences: 3,
      context: 20,
      maxRows: 8,
      act: 'f16',
      limits: big(GiB),
    } as const;
    const plan = planMemory(req);
    expect(runnerBytes).toBe(plan.items.kv + plan.items.activations + plan.items.logits + 5 * 8 * 4);
    // with an adapter the plan adds the staging rows to the activations
    const withLora = planMemory({ ...req, adapters: [lora] });
    expect(withLora.items.activations - plan.items.activations).toBe(staging);
  });

  it('training: what a LoraTrainer step allocates, without recompute', async () => {
    const be = new CountingCpu();
    const model = loadLlama(be, config, weights);
    const before = be.dedicated;
    const adapter = createLora(be, config, lora, 2);
    const trainer = new LoraTrainer(model, adapter, DEFAULT_ADAMW);
    const setupBytes = be.dedicated - before;
    const B = 2,
      T = 12;
    const ex = (s: number) => ({
      tokens: Array.from({ length: T + 1 }, (_, i) => (i * 7 + s) % 96),
      lossMask: Array.from({ length: T + 1 }, (_, i) => (i > 0 ? 1 : 0)),
    });
    await trainer.step([ex(1), ex(2)]);
    const plan = planMemory({
      kind: 'training',
      config,
      weights: { matrices: 'f32' },
      batch: B,
      seq: T,
      lora,
      recompute: false,
      limits: big(GiB),
    });
    expect(before).toBe(plan.items.weights);
    expect(setupBytes).toBe(plan.items.adapters + plan.items.gradients + plan.items.optimizer);
    // Every tensor the tape allocated in the step (the CPU has no pool: no rounding).
    expect(be.scratchBytes).toBe(plan.items.activations + plan.items.logits + plan.training!.batchInputs);
    // And the identity the planner's recompute figures rest on: the whole model's tape is the head,
    // the first layer and L−1 further layers.
    const t = plan.training!;
    expect(be.scratchBytes).toBe(
      t.batchInputs + B * T * 64 * 4 + t.firstLayer + 2 * (t.layerForward + t.layerBackward) + t.head,
    );
  });
});
