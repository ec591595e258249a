/**
 * The LLaMA view of a GGUF file: typed metadata access, the config from `llama.*` keys, GGUF
 * tensor names ↔ ours with shape checks, and a small model read whole into f32 (docs/gguf.md).
 */
import { EngineError, formatBytes } from '../errors.ts';
import { validateConfig, kvDim, paramCount, type LlamaConfig } from '../model/config.ts';
import { WEIGHT_NAMES, weightSizes, type LlamaWeightsF32, type WeightName } from '../model/weights.ts';
import type { ByteSource } from './bytesource.ts';

import { type GgufTensorInfo, type GgufFile, readTensorBytes, dequantizeTensor } from './gguf.ts';
import { isSupportedType, unsupported, type GgufArray, type GgufKV } from './gguf-types.ts';

// ---------------------------------------------------------------------------------------------
// metadata access

function metaBad(file: GgufFile, key: string, want: string, kv: GgufKV): EngineError {
  return new EngineError(
    'BAD_FILE',
    `${file.name}: metadata ${key} is a ${kv.type}, expected ${want}: the file is corrupt or was written by a converter dust2gold does not know.`,
  );
}

/** A string value, or undefined when the key is absent. */
export function metaString(file: GgufFile, key: string): string | undefined {
  const kv = file.metadata.get(key);
  if (!kv) return undefined;
  if (kv.type !== 'string') throw metaBad(file, key, 'a string', kv);
  return kv.value;
}

/** A numeric value (any integer or float type; 64-bit integers must be below 2^53), or undefined. */
export function metaNumber(file: GgufFile, key: string): number | undefined {
  const kv = file.metadata.get(key);
  if (!kv) return undefined;
  if (kv.type === 'u64' || kv.type === 'i64') {
    const v = Number(kv.value);
    if (!Number.isSafeInteger(v)) throw metaBad(file, key, 'a number below 2^53', kv);
    return v;
  }
  if (typeof kv.value !== 'number') throw metaBad(file, key, 'a number', kv);
  return kv.value;
}

/** An array value, or undefined. */
export function metaArray(file: GgufFile, key: string): GgufArray | undefined {
  const kv = file.metadata.get(key);
  if (!kv) return undefined;
  if (kv.type !== 'array') throw metaBad(file, key, 'an array', kv);
  return kv.value;
}

/** The shortest decimal that is the same float32 (9.99999974737875e-6 → 1e-5). */
export function f32Decimal(v: number): number {
  for (let p = 1; p <= 9; p++) {
    const c = Number(v.toPrecision(p));
    if (Math.fround(c) === v) return c;
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// LLaMA

/**
 * The LLaMA config of a GGUF file with general.architecture = "llama" (llama.cpp's key names:
 * llama.embedding_length, feed_forward_length, block_count, attention.head_count,
 * attention.head_count_kv (default head_count), context_length, rope.freq_base (default 10000),
 * attention.layer_norm_rms_epsilon). vocabSize: token_embd.weight's rows, checked against
 * tokenizer.ggml.tokens; sharedClassifier when output.weight is absent. f32 values come back as
 * their shortest decimal (1e-5, not 9.99999974737875e-6).
 */
export function llamaConfigFromGguf(file: GgufFile): LlamaConfig {
  const name = file.name;
  const arch = metaString(file, 'general.architecture');
  if (arch === undefined) {
    throw new EngineError(
      'BAD_FILE',
      `${name} has no general.architecture: it is not a model file (or a damaged one); pick a LLaMA model .gguf.`,
    );
  }
  if (arch !== 'llama') {
    throw new EngineError(
      'BAD_FILE',
      `${name} is a "${arch}" model; dust2gold runs LLaMA-architecture models (general.architecture "llama"), such as Llama 2 7B: pick one of those.`,
    );
  }
  const num = (key: string, required: boolean, integer: boolean): number | undefined => {
    const kv = file.metadata.get(key);
    if (kv?.type === 'array') {
      throw new EngineError(
        'BAD_FILE',
        `${name}: ${key} is a per-layer list; dust2gold runs LLaMA models whose layers all have the same shape.`,
      );
    }
    const v = metaNumber(file, key);
    if (v === undefined) {
      if (required) {
        throw new EngineError(
          'BAD_FILE',
          `${name} has no ${key}, which every LLaMA GGUF file carries: the file is damaged or was written by an unusual converter.`,
        );
      }
      return undefined;
    }
    if (integer && !(Number.isSafeInteger(v) && v >= 0)) {
      throw new EngineError('BAD_FILE', `${name}: ${key} is ${v}, expected a non-negative integer.`);
    }
    return kv?.type === 'f32' ? f32Decimal(v) : v;
  };
  const experts = num('llama.expert_count', false, true);
  if (experts !== undefined && experts > 0) {
    throw new EngineError(
      'BAD_FILE',
      `${name} is a mixture-of-experts model (${experts} experts, like Mixtral); dust2gold runs dense LLaMA models only.`,
    );
  }
  const scaling = metaString(file, 'llama.rope.scaling.type');
  const factor = num('llama.rope.scaling.factor', false, false);
  if (scaling !== undefined && scaling !== 'none' && !(scaling === 'linear' && factor === 1)) {
    throw new EngineError(
      'BAD_FILE',
      `${name} uses "${scaling}" RoPE scaling (a long-context variant); dust2gold implements plain RoPE only.`,
    );
  }
  const dim = num('llama.embedding_length', true, true)!;
  const nHeads = num('llama.attention.head_count', true, true)!;
  const ropeDims = num('llama.rope.dimension_count', false, true);
  if (ropeDims !== undefined && nHeads > 0 && ropeDims !== dim / nHeads) {
    throw new EngineError(
      'BAD_FILE',
      `${name} rotates ${ropeDims} of each head's ${dim / nHeads} dimensions with RoPE; dust2gold rotates whole heads only.`,
    );
  }
  const tokens = metaArray(file, 'tokenizer.ggml.tokens');
  const embd = file.tensorsByName.get('token_embd.weight');
  const vocabFromEmbd = embd && embd.dims.length === 2 ? embd.dims[1] : undefined;
  const vocabKey = num('llama.vocab_size', false, true);
  const vocabSize = vocabFromEmbd ?? tokens?.items.length ?? vocabKey;
  if (vocabSize === undefined) {
    throw new EngineError(
      'BAD_FILE',
      `${name} has neither token_embd.weight nor tokenizer.ggml.tokens, so its vocabulary size is unknown: the file is incomplete.`,
    );
  }
  if (tokens && tokens.items.length !== vocabSize) {
    throw new EngineError(
      'VOCAB_MISMATCH',
      `${name}: the tokenizer lists ${tokens.items.length} tokens but token_embd.weight has ${vocabSize} rows: the file's tokenizer and model do not belong together.`,
    );
  }
  const config: LlamaConfig = {
    dim,
    hiddenDim: num('llama.feed_forward_length', true, true)!,
    nLayers: num('llama.block_count', true, true)!,
    nHeads,
    nKvHeads: num('llama.attention.head_count_kv', false, true) ?? nHeads,
    vocabSize,
    maxSeqLen: num('llama.context_length', true, true)!,
    ropeTheta: num('llama.rope.freq_base', false, false) ?? 10000,
    normEps: num('llama.attention.layer_norm_rms_epsilon', true, false)!,
    sharedClassifier: !file.tensorsByName.has('output.weight'),
  };
  validateConfig(config, 'BAD_FILE', name);
  return config;
}

/** A GGUF LLaMA tensor in our terms: which weight, and which layer (null for the global ones). */
export interface LlamaTensorRef {
  readonly weight: WeightName;
  readonly layer: number | null;
}

const GLOBAL_NAMES: Partial<Record<WeightName, string>> = {
  tokenEmbedding: 'token_embd.weight',
  rmsFinal: 'output_norm.weight',
  wcls: 'output.weight',
};
const LAYER_NAMES: Partial<Record<WeightName, string>> = {
  rmsAtt: 'attn_norm',
  wq: 'attn_q',
  wk: 'attn_k',
  wv: 'attn_v',
  wo: 'attn_output',
  rmsFfn: 'ffn_norm',
  w1: 'ffn_gate',
  w2: 'ffn_down',
  w3: 'ffn_up',
};

/** 'blk.3.attn_k.weight' → { weight: 'wk', layer: 3 }; null for a name that is not a LLaMA weight. */
export function ggufNameToOurs(name: string): LlamaTensorRef | null {
  for (const [w, g] of Object.entries(GLOBAL_NAMES))
    if (g === name) return { weight: w as WeightName, layer: null };
  const m = /^blk\.(0|[1-9]\d*)\.([a-z_]+)\.weight$/.exec(name);
  if (!m) return null;
  for (const [w, g] of Object.entries(LAYER_NAMES)) {
    if (g === m[2]) return { weight: w as WeightName, layer: Number(m[1]) };
  }
  return null;
}

/** { weight: 'wk', layer: 3 } → 'blk.3.attn_k.weight'. */
export function oursToGgufName(weight: WeightName, layer: number | null = null): string {
  const g = GLOBAL_NAMES[weight];
  if (g !== undefined) return g;
  if (layer === null || !Number.isInteger(layer) || layer < 0) {
    throw new EngineError('BAD_ARGUMENT', `oursToGgufName: ${weight} is per layer; pass the layer index.`);
  }
  return `blk.${layer}.${LAYER_NAMES[weight]!}.weight`;
}

/** The ggml dims of one tensor of `weight` (one layer's slice): an (N, K) matrix is [K, N]. */
export function ggufDims(c: LlamaConfig, weight: WeightName): number[] {
  const { dim: C, hiddenDim: H, vocabSize: V } = c;
  const KV = kvDim(c);
  switch (weight) {
    case 'tokenEmbedding':
    case 'wcls':
      return [C, V];
    case 'rmsAtt':
    case 'rmsFfn':
    case 'rmsFinal':
      return [C];
    case 'wq':
    case 'wo':
      return [C, C];
    case 'wk':
    case 'wv':
      return [C, KV];
    case 'w1':
    case 'w3':
      return [C, H];
    case 'w2':
      return [H, C];
  }
}

export interface LlamaGgufTensor extends LlamaTensorRef {
  readonly info: GgufTensorInfo;
}

/**
 * Every LLaMA weight of the file, checked: each expected tensor present (output.weight only when the
 * classifier is not shared), shapes as `config` requires (SHAPE_MISMATCH), types readable
 * (BAD_FILE naming the tensor and type), no tensor dust2gold would ignore (BAD_FILE). File order.
 */
export function llamaTensorsFromGguf(
  file: GgufFile,
  config: LlamaConfig = llamaConfigFromGguf(file),
): LlamaGgufTensor[] {
  const out: LlamaGgufTensor[] = [];
  const unknown: string[] = [];
  for (const info of file.tensors) {
    const ref = ggufNameToOurs(info.name);
    if (!ref || (ref.layer !== null && ref.layer >= config.nLayers)) {
      unknown.push(info.name);
      continue;
    }
    const want = ggufDims(config, ref.weight);
    if (want.length !== info.dims.length || want.some((d, i) => d !== info.dims[i])) {
      throw new EngineError(
        'SHAPE_MISMATCH',
        `${file.name}: ${info.name} has dims [${info.dims.join(', ')}] but the model its header describes needs [${want.join(', ')}] (ggml lists the contiguous dimension first: an N×K matrix is [K, N]). The file is inconsistent.`,
      );
    }
    if (!isSupportedType(info.type)) throw unsupported(info.name, info.type);
    out.push({ ...ref, info });
  }
  if (unknown.length > 0) {
    const shown =
      unknown.slice(0, 4).join(', ') + (unknown.length > 4 ? `, … (${unknown.length} in all)` : '');
    throw new EngineError(
      'BAD_FILE',
      `${file.name} holds tensors a plain LLaMA model does not have (${shown}): it is a variant dust2gold does not run.`,
    );
  }
  const have = new Set(file.tensors.map((t) => t.name));
  for (const weight of WEIGHT_NAMES) {
    if (weight === 'wcls' && config.sharedClassifier) continue;
    const layers = GLOBAL_NAMES[weight] !== undefined ? [null] : [...Array(config.nLayers).keys()];
    for (const l of layers) {
      const n = oursToGgufName(weight, l);
      if (!have.has(n)) {
        throw new EngineError(
          'BAD_FILE',
          `${file.name} has no ${n}, which its header's ${config.nLayers}-layer LLaMA needs: the file is incomplete or damaged — download it again.`,
        );
      }
    }
  }
  return out;
}

/**
 * All weights of a small GGUF LLaMA dequantized to f32 in our layout (per-layer tensors concatenated).
 * For small models only: LIMIT_EXCEEDED beyond `maxBytes` of f32 (default 1 GiB); big models are
 * loaded tensor by tensor, quantized.
 */
export async function readLlamaF32(
  file: GgufFile,
  src: ByteSource,
  maxBytes = 1 << 30,
): Promise<{ config: LlamaConfig; weights: LlamaWeightsF32 }> {
  const config = llamaConfigFromGguf(file);
  const bytes = 4 * paramCount(config);
  if (bytes > maxBytes) {
    throw new EngineError(
      'LIMIT_EXCEEDED',
      `${file.name} would take ${formatBytes(bytes)} as f32, more than the ${formatBytes(maxBytes)} allowed here: load it quantized instead.`,
    );
  }
  const sizes = weightSizes(config);
  const w = {} as Record<WeightName, Float32Array>;
  for (const n of WEIGHT_NAMES)
    if (n !== 'wcls' || !config.sharedClassifier) w[n] = new Float32Array(sizes[n]);
  for (const t of llamaTensorsFromGguf(file, config)) {
    const v = dequantizeTensor(t.info, await readTensorBytes(file, src, t.info));
    w[t.weight].set(v, (t.layer ?? 0) * v.length);
  }
  if (config.sharedClassifier) w.wcls = w.tokenEmbedding;
  return { config, weights: w };
}
