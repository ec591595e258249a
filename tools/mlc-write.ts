/**
 * Writes an MLC LLM / web-llm LLaMA folder (mlc-chat-config.json, tensor-cache.json,
 * params_shard_*.bin) from our f32 weights, the way mlc_llm's convert_weight + gen_config would:
 * q/k rows put back in Hugging Face's RoPE order, q/k/v and gate/up fused, every matrix (the
 * embedding and lm_head too) group-quantized with MLC's rule (src/engine/io/mlc.ts quantizeMlcQ4),
 * norms in the model dtype, and the tensors dumped like tvmjs's dump_tensor_cache: encode format
 * "f32-to-bf16" by default (float32 tensors stored as bfloat16), shards of at most 32 MiB, a
 * tensor of half the cap or more in a shard of its own, md5sum per shard. Test files only: no
 * model here comes from MLC, every test builds its own.
 *
 * @example
 *   const files = writeMlc(config, weights, { quantization: 'q4f16_1' }); // Map<file name, bytes>
 *   const model = await openMlc(memoryFolder('tiny-MLC', files));
 *
 *   node --import tsx tools/mlc-write.ts --out /tmp/tiny-MLC --dim 64 --hidden 172 --layers 2
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { EngineError } from '../src/engine/errors.ts';
import {
  f32ToBf16,
  mlcParams,
  quantizeMlcQ4,
  MLC_CHAT_CONFIG,
  type MlcDtype,
  type MlcFormat,
  type MlcManifest,
  type MlcManifestName,
  type MlcQuantization,
  type MlcRecord,
  type MlcShard,
} from '../src/engine/io/mlc.ts';
import { headSize, kvDim, paramCount, validateConfig, type LlamaConfig } from '../src/engine/model/config.ts';
import { checkWeights, type LlamaWeightsF32 } from '../src/engine/model/weights.ts';
import { uniformStream } from '../src/engine/model/lora.ts';
import { randomLlamaWeights as engineRandomWeights } from '../src/engine/model/random.ts';
import { permuteRopeRows } from '../src/engine/model/rope-order.ts';
import { f32ToF16 } from '../src/engine/quant.ts';

export interface MlcWriteOptions {
  /** Default q4f16_1. */
  quantization?: MlcQuantization;
  /** Shard cap in bytes; default 32 MiB (tvmjs dump_tensor_cache shard_cap_mb = 32). */
  maxShardBytes?: number;
  /** Default "f32-to-bf16", as mlc_llm convert_weight dumps; "raw" keeps float32 as float32. */
  encodeFormat?: MlcFormat;
  /** Default tensor-cache.json; ndarray-cache.json writes an older-style folder. */
  manifestName?: MlcManifestName;
}

/** Our matrix rows → the HF-layout f32 rows MLC's loader would have quantized for `base`. */
function hfRows(c: LlamaConfig, w: LlamaWeightsF32, base: string): Float32Array {
  if (base === 'model.embed_tokens') return w.tokenEmbedding;
  if (base === 'lm_head') return w.wcls;
  const m =
    /^model\.layers\.(\d+)\.(self_attn\.qkv_proj|self_attn\.o_proj|mlp\.gate_up_proj|mlp\.down_proj)$/.exec(
      base,
    );
  if (!m) throw new EngineError('BAD_ARGUMENT', `writeMlc: unknown parameter ${base}`);
  const l = Number(m[1]);
  const C = c.dim;
  const H = c.hiddenDim;
  const KV = kvDim(c);
  const hs = headSize(c);
  const layer = (a: Float32Array, n: number) => a.subarray(l * n, (l + 1) * n);
  const cat = (...parts: Float32Array[]) => {
    const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  };
  switch (m[2]) {
    case 'self_attn.qkv_proj':
      return cat(
        permuteRopeRows(layer(w.wq, C * C), c.nHeads, hs, true),
        permuteRopeRows(layer(w.wk, KV * C), c.nKvHeads, hs, true),
        layer(w.wv, KV * C),
      );
    case 'self_attn.o_proj':
      return layer(w.wo, C * C);
    case 'mlp.gate_up_proj':
      return cat(layer(w.w1, H * C), layer(w.w3, H * C));
    default:
      return layer(w.w2, C * H);
  }
}

/** A norm weight of our layout by its MLC name. */
function vector(c: LlamaConfig, w: LlamaWeightsF32, name: string): Float32Array {
  if (name === 'model.norm.weight') return w.rmsFinal;
  const m = /^model\.layers\.(\d+)\.(input_layernorm|post_attention_layernorm)\.weight$/.exec(name);
  if (!m) throw new EngineError('BAD_ARGUMENT', `writeMlc: unknown parameter ${name}`);
  const a = m[2] === 'input_layernorm' ? w.rmsAtt : w.rmsFfn;
  const l = Number(m[1]);
  return a.subarray(l * c.dim, (l + 1) * c.dim);
}

/** Floats of `dtype` as tvmjs dumps them under `format` (little-endian). */
function encodeFloats(v: Float32Array, dtype: 'float16' | 'float32', format: MlcFormat): Uint8Array {
  if (dtype === 'float32' && format === 'raw') return new Uint8Array(v.slice().buffer);
  const h = new Uint16Array(v.length);
  for (let i = 0; i < v.length; i++) h[i] = dtype === 'float16' ? f32ToF16(v[i]!) : f32ToBf16(v[i]!);
  return new Uint8Array(h.buffer);
}

/**
 * tvmjs's TensorCacheShardingManager: a tensor that would fill the pending shard to the cap closes
 * it, unless the tensor is half the cap or more: then it goes out of band into a shard of its own
 * (taking the next number) and the pending shard stays open.
 */
export class TensorCacheSharder {
  readonly shards: MlcShard[] = [];
  readonly files = new Map<string, Uint8Array>();
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private pendingRecords: MlcRecord[] = [];
  constructor(private readonly cap: number) {}

  add(rec: Omit<MlcRecord, 'byteOffset'>, data: Uint8Array): void {
    if (this.pendingBytes + data.length >= this.cap) {
      if (data.length * 2 >= this.cap) {
        this.emit([data], [{ ...rec, byteOffset: 0 }]); // out of band: a shard of its own
        return;
      }
      this.commit();
    }
    this.pendingRecords.push({ ...rec, byteOffset: this.pendingBytes });
    this.pending.push(data);
    this.pendingBytes += data.length;
  }

  commit(): void {
    if (this.pendingBytes === 0) return;
    this.emit(this.pending, this.pendingRecords);
    this.pending = [];
    this.pendingRecords = [];
    this.pendingBytes = 0;
  }

  private emit(parts: Uint8Array[], records: MlcRecord[]): void {
    const bytes = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
    let o = 0;
    for (const p of parts) {
      bytes.set(p, o);
      o += p.length;
    }
    const dataPath = `params_shard_${this.shards.length}.bin`;
    this.files.set(dataPath, bytes);
    this.shards.push({
      dataPath,
      format: 'raw-shard',
      nbytes: bytes.length,
      records,
      md5sum: createHash('md5').update(bytes).digest('hex'),
    });
  }
}

/** The files of an MLC folder for our weights: name → bytes. */
export function writeMlc(
  config: LlamaConfig,
  w: LlamaWeightsF32,
  opts: MlcWriteOptions = {},
): Map<string, Uint8Array> {
  validateConfig(config);
  checkWeights(config, w);
  const quant = opts.quantization ?? 'q4f16_1';
  const format = opts.encodeFormat ?? 'f32-to-bf16';
  const cap = opts.maxShardBytes ?? 32 * 1024 * 1024;
  if (!(Number.isSafeInteger(cap) && cap > 0))
    throw new EngineError('BAD_ARGUMENT', `writeMlc: maxShardBytes is ${cap}, expected a positive integer.`);
  const floatType: 'float16' | 'float32' = quant === 'q4f16_1' ? 'float16' : 'float32';
  const sharder = new TensorCacheSharder(cap);
  let paramBytes = 0;
  let count = 0;
  const put = (name: string, shape: number[], dtype: MlcDtype, data: Uint8Array, itemBytes: number): void => {
    sharder.add({ name, shape, dtype, format, nbytes: data.length }, data);
    paramBytes += shape.reduce((a, b) => a * b, 1) * itemBytes; // before encoding, as MLC counts
    count++;
  };
  for (const p of mlcParams(config)) {
    if (p.kind === 'vector') {
      put(
        p.name,
        [p.length],
        floatType,
        encodeFloats(vector(config, w, p.name), floatType, format),
        floatType === 'float16' ? 2 : 4,
      );
      continue;
    }
    const q = quantizeMlcQ4(hfRows(config, w, p.base), p.rows, p.cols, quant);
    put(
      `${p.base}.q_weight`,
      [p.rows, q.qWeight.length / p.rows],
      'uint32',
      new Uint8Array(q.qWeight.buffer),
      4,
    );
    put(
      `${p.base}.q_scale`,
      [p.rows, q.scale.length / p.rows],
      floatType,
      encodeFloats(q.scale, floatType, format),
      floatType === 'float16' ? 2 : 4,
    );
  }
  sharder.commit();
  const params = paramCount(config);
  const manifest: MlcManifest = {
    metadata: { ParamSize: count, ParamBytes: paramBytes, BitsPerParam: (paramBytes * 8) / params },
    records: sharder.shards,
  };
  const files = new Map(sharder.files);
  const json = (v: unknown, indent: number) => new TextEncoder().encode(JSON.stringify(v, null, indent));
  files.set(opts.manifestName ?? 'tensor-cache.json', json(manifest, 4));
  files.set(MLC_CHAT_CONFIG, json(chatConfig(config, quant), 2));
  return files;
}

/** The fields of mlc-chat-config.json that gen_config writes and our reader looks at. */
function chatConfig(c: LlamaConfig, quant: MlcQuantization): Record<string, unknown> {
  const prefill = Math.min(c.maxSeqLen, 8192);
  return {
    version: '0.1.0',
    model_type: 'llama',
    quantization: quant,
    model_config: {
      hidden_size: c.dim,
      intermediate_size: c.hiddenDim,
      num_attention_heads: c.nHeads,
      num_hidden_layers: c.nLayers,
      rms_norm_eps: c.normEps,
      vocab_size: c.vocabSize,
      tie_word_embeddings: c.sharedClassifier,
      position_embedding_base: c.ropeTheta,
      rope_scaling: null,
      context_window_size: c.maxSeqLen,
      prefill_chunk_size: prefill,
      num_key_value_heads: c.nKvHeads,
      head_dim: headSize(c),
      tensor_parallel_shards: 1,
      pipeline_parallel_stages: 1,
      max_batch_size: 1,
    },
    vocab_size: c.vocabSize,
    context_window_size: c.maxSeqLen,
    sliding_window_size: -1,
    prefill_chunk_size: prefill,
    attention_sink_size: -1,
    tensor_parallel_shards: 1,
    pipeline_parallel_stages: 1,
    conv_template: 'LM',
    tokenizer_files: [],
  };
}

/**
 * The engine's seeded random weights (src/engine/model/random.ts) with the norms spread around 1
 * too, so that a reader mixing up or mis-decoding norm vectors is caught.
 */
export function randomLlamaWeights(c: LlamaConfig, seed = 1): LlamaWeightsF32 {
  const w = engineRandomWeights(c, seed);
  const rnd = uniformStream(seed ^ 0x6e6f726d);
  for (const n of ['rmsAtt', 'rmsFfn', 'rmsFinal'] as const) w[n] = w[n].map(() => 1 + 0.5 * rnd());
  return w;
}

function main(argv: string[]): void {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string' },
      quant: { type: 'string', default: 'q4f16_1' },
      dim: { type: 'string', default: '64' },
      hidden: { type: 'string', default: '172' },
      layers: { type: 'string', default: '2' },
      heads: { type: 'string', default: '8' },
      'kv-heads': { type: 'string' },
      vocab: { type: 'string', default: '512' },
      context: { type: 'string', default: '512' },
      tied: { type: 'boolean', default: false },
      'shard-mb': { type: 'string', default: '32' },
      seed: { type: 'string', default: '1' },
    },
    strict: true,
  });
  if (!values.out) throw new EngineError('BAD_ARGUMENT', 'mlc-write needs --out <folder>');
  if (values.quant !== 'q4f16_1' && values.quant !== 'q4f32_1')
    throw new EngineError('BAD_ARGUMENT', '--quant is q4f16_1 or q4f32_1');
  const n = (v: string | undefined) => Number(v);
  const config: LlamaConfig = {
    dim: n(values.dim),
    hiddenDim: n(values.hidden),
    nLayers: n(values.layers),
    nHeads: n(values.heads),
    nKvHeads: n(values['kv-heads'] ?? values.heads),
    vocabSize: n(values.vocab),
    maxSeqLen: n(values.context),
    ropeTheta: 10000,
    normEps: 1e-5,
    sharedClassifier: values.tied,
  };
  validateConfig(config);
  const files = writeMlc(config, randomLlamaWeights(config, n(values.seed)), {
    quantization: values.quant,
    maxShardBytes: Math.round(n(values['shard-mb']) * 1024 * 1024),
  });
  mkdirSync(values.out, { recursive: true });
  for (const [name, bytes] of files) writeFileSync(join(values.out, name), bytes);
  console.log(`wrote ${files.size} files to ${values.out}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main(process.argv.slice(2));
