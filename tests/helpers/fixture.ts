/** Reads the PyTorch fixture (tools/make_fixtures.py) into engine types. */
import { readFileSync } from 'node:fs';
import type { LlamaConfig } from '../../src/engine/model/config.ts';
import type { LoraState } from '../../src/engine/model/lora.ts';
import type { LlamaWeightsF32 } from '../../src/engine/model/weights.ts';

export type Blob = { shape: number[]; f32?: string; f64?: string };

export function decode(b: Blob): Float32Array | Float64Array {
  const bytes = Buffer.from((b.f32 ?? b.f64)!, 'base64');
  const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  return b.f32 ? new Float32Array(ab) : new Float64Array(ab);
}

export interface TinyFixture {
  config: LlamaConfig;
  weights: LlamaWeightsF32;
  lora: LoraState;
  tokens: number[][];
  targets: number[][];
  lossMask: number[][];
  logits: Float64Array;
  loss: number;
  loraGrads: Record<string, Float64Array>;
  adamw: {
    lr: number;
    beta1: number;
    beta2: number;
    eps: number;
    weight_decay: number;
    max_grad_norm: number;
    steps: number;
  };
  adamwLosses: Float64Array;
  adamwGradNorms: Float64Array;
  loraFinal: Record<string, Float64Array>;
}

export function loadTinyFixture(): TinyFixture {
  const j = JSON.parse(readFileSync('tests/fixtures/tiny_llama_lora.json', 'utf8'));
  const c = j.config;
  const config: LlamaConfig = {
    dim: c.dim,
    hiddenDim: c.hidden_dim,
    nLayers: c.n_layers,
    nHeads: c.n_heads,
    nKvHeads: c.n_kv_heads,
    vocabSize: c.vocab_size,
    maxSeqLen: c.max_seq_len,
    ropeTheta: c.rope_theta,
    normEps: c.norm_eps,
    sharedClassifier: false,
  };
  const w = (name: string) => decode(j.weights[name]) as Float32Array;
  const cat = (site: string) => {
    const parts = Array.from({ length: config.nLayers }, (_, l) => w(`layers.${l}.${site}`));
    const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  };
  const weights: LlamaWeightsF32 = {
    tokenEmbedding: w('tok_embeddings'),
    rmsAtt: cat('attention_norm'),
    wq: cat('wq'),
    wk: cat('wk'),
    wv: cat('wv'),
    wo: cat('wo'),
    rmsFfn: cat('ffn_norm'),
    w1: cat('w1'),
    w2: cat('w2'),
    w3: cat('w3'),
    rmsFinal: w('norm'),
    wcls: w('output'),
  };
  const tensors: LoraState['tensors'] = {};
  for (const [name, b] of Object.entries(j.lora_init as Record<string, Blob>)) {
    tensors[name] = { shape: b.shape, data: decode(b) as Float32Array };
  }
  const lora: LoraState = {
    config: { rank: j.lora.rank, alpha: j.lora.alpha, dropout: j.lora.dropout, targets: j.lora.targets },
    model: {
      dim: config.dim,
      hiddenDim: config.hiddenDim,
      nLayers: config.nLayers,
      kvDim: (config.dim * config.nKvHeads) / config.nHeads,
    },
    tensors,
  };
  const f64 = (o: Record<string, Blob>) =>
    Object.fromEntries(Object.entries(o).map(([k, b]) => [k, decode(b) as Float64Array]));
  return {
    config,
    weights,
    lora,
    tokens: j.tokens,
    targets: j.targets,
    lossMask: j.loss_mask,
    logits: decode(j.logits) as Float64Array,
    loss: (decode(j.loss) as Float64Array)[0]!,
    loraGrads: f64(j.lora_grads),
    adamw: j.adamw,
    adamwLosses: decode(j.adamw_losses) as Float64Array,
    adamwGradNorms: decode(j.adamw_grad_norms) as Float64Array,
    loraFinal: f64(j.lora_final),
  };
}

/** The fixture's batch as trainer examples: tokens + last target, mask shifted by one. */
export function fixtureExamples(f: TinyFixture): { tokens: number[]; lossMask: number[] }[] {
  return f.tokens.map((row, b) => ({
    tokens: [...row, f.targets[b]![row.length - 1]!],
    lossMask: [0, ...f.lossMask[b]!],
  }));
}
