/**
 * web-llm / MLC LLM weights: the `q4f16_1` and `q4f32_1` builds of a LLaMA model as web-llm
 * downloads them (mlc-chat-config.json, tensor-cache.json or ndarray-cache.json, params_shard_*.bin),
 * read one tensor (or a row range of one) at a time, split into our weight names and dequantized.
 * The format, with its sources, is written down in docs/mlc.md; in short:
 *
 * Manifest (apache/tvm python/tvm/contrib/tvmjs.py, dump_tensor_cache; the file was called
 * ndarray-cache.json before tvm's NDArray → Tensor rename, same schema):
 *   { "metadata": {ParamSize, ParamBytes, BitsPerParam}, "records": [ shard, ... ] }
 *   shard  = { dataPath: "params_shard_N.bin", format: "raw-shard", nbytes, records: [record], md5sum }
 *   record = { name, shape, dtype, format, nbytes, byteOffset }   (byteOffset within the shard)
 *   Every record carries the dump's encode format (mlc_llm convert_weight uses "f32-to-bf16"), but
 *   only float32 records are actually encoded: their data is bfloat16 (2 bytes each, the top half of
 *   the f32, rounded to nearest even). Other dtypes are raw little-endian bytes either way.
 *
 * Group quantization (mlc-ai/mlc-llm python/mlc_llm/quantization/group_quantization.py and
 * utils.py; q4f16_1 / q4f32_1 in quantization.py: int4 in uint32, group 32, layout "NK", the
 * embedding and lm_head quantized too): a (N, K) weight becomes
 *   q_weight (N, 4·⌈K/32⌉) uint32   element k of row n in word k/8, bits 4·(k mod 8) (low nibble first)
 *   q_scale  (N, ⌈K/32⌉)   float16 (q4f16_1) or float32 (q4f32_1, so stored as bf16, see above)
 *   value = (q − 7) · scale, q ∈ 0..14
 * quantized as scale = max|w| / 7 over the group, q = clamp(round(w / scale + 7), 0, 14), all in the
 * model dtype (f16 for q4f16_1, after casting the weights to f16). `round` is TVM's tir.round, which
 * LLVM, CUDA and Metal lower to round-half-away-from-zero.
 *
 * LLaMA parameter names (mlc-ai/mlc-llm python/mlc_llm/model/llama/llama_model.py, llama_loader.py):
 *   model.embed_tokens.{q_weight,q_scale}             (V, C)
 *   model.layers.{l}.self_attn.qkv_proj.{…}           rows: q (NH·HS), then k (NKV·HS), then v (NKV·HS)
 *   model.layers.{l}.self_attn.o_proj.{…}             (C, C)
 *   model.layers.{l}.mlp.gate_up_proj.{…}             rows: gate (H), then up (H)
 *   model.layers.{l}.mlp.down_proj.{…}                (C, H)
 *   model.layers.{l}.input_layernorm.weight, post_attention_layernorm.weight, model.norm.weight (C)
 *   lm_head.{q_weight,q_scale}                        (V, C), absent when tie_word_embeddings
 * The loader concatenates Hugging Face's q_proj/k_proj/v_proj (and gate_proj/up_proj) as they are,
 * so q and k rows are in HF's rotate_half RoPE order; we reorder them to our adjacent-pair order
 * with src/engine/model/rope-order.ts permuteRopeRows (see `ropeRowOrder`).
 *
 * @example
 *   const model = await openMlc(folder);               // checks config, manifest, shard sizes
 *   const wq = await readMlcSite(model, 0, 'wq');       // q4 rows of layer 0's q, in our RoPE order
 *   const { blocks } = mlcQ4ToQ4_0(wq);                  // the same values as GGUF q4_0 blocks
 */
import { EngineError, formatBytes } from '../errors.ts';
import { headSize, kvDim, validateConfig, type LlamaConfig } from '../model/config.ts';
import { LINEAR_SITES, type LinearSite } from '../model/llama.ts';
import { weightSizes, type LlamaWeightsF32 } from '../model/weights.ts';
import { f16ToF32 } from '../quant.ts';
import { fromBytes, type ByteSource } from './bytesource.ts';

export type { ByteSource };

import {
  type MlcFolder,
  type MlcQuantization,
  MLC_QUANTIZATIONS,
  MLC_CHAT_CONFIG,
  MLC_MANIFESTS,
  type MlcManifestName,
  type MlcDtype,
  type MlcFormat,
  type MlcRecord,
  type MlcShard,
  type MlcManifest,
  storedElementBytes,
  bf16ToF32,
  mlcWordsPerRow,
  mlcGroupsPerRow,
  type MlcQ4,
  dequantizeMlcQ4,
  permuteMlcRows,
  ropeRowOrder,
  DTYPE_BYTES,
} from './mlc-quant.ts';
export * from './mlc-quant.ts';

// ---------------------------------------------------------------------------------------------
// Names and shapes

/** One MLC parameter: a group-quantized matrix (q_weight + q_scale) or an f16/f32 vector. */
export type MlcParam =
  { kind: 'q4'; base: string; rows: number; cols: number } | { kind: 'vector'; name: string; length: number };

/** Every parameter of an MLC LLaMA for config c, in the order of MLC's module definition. */
export function mlcParams(c: LlamaConfig): MlcParam[] {
  const C = c.dim;
  const H = c.hiddenDim;
  const KV = kvDim(c);
  const out: MlcParam[] = [{ kind: 'q4', base: 'model.embed_tokens', rows: c.vocabSize, cols: C }];
  for (let l = 0; l < c.nLayers; l++) {
    const p = `model.layers.${l}`;
    out.push(
      { kind: 'q4', base: `${p}.self_attn.qkv_proj`, rows: C + 2 * KV, cols: C },
      { kind: 'q4', base: `${p}.self_attn.o_proj`, rows: C, cols: C },
      { kind: 'q4', base: `${p}.mlp.gate_up_proj`, rows: 2 * H, cols: C },
      { kind: 'q4', base: `${p}.mlp.down_proj`, rows: C, cols: H },
      { kind: 'vector', name: `${p}.input_layernorm.weight`, length: C },
      { kind: 'vector', name: `${p}.post_attention_layernorm.weight`, length: C },
    );
  }
  out.push({ kind: 'vector', name: 'model.norm.weight', length: C });
  if (!c.sharedClassifier) out.push({ kind: 'q4', base: 'lm_head', rows: c.vocabSize, cols: C });
  return out;
}

/** Where one of our layer matrices lives in MLC's tensors. */
export interface MlcSiteSource {
  base: string;
  rowStart: number;
  rows: number;
  cols: number;
  /** Heads whose rows to reorder from HF's RoPE layout to ours (q: NH, k: NKV), else null. */
  ropeHeads: number | null;
}

/** wq/wk/wv are row blocks of qkv_proj (q, k, v), w1/w3 of gate_up_proj (gate, up). */
export function mlcSiteSource(c: LlamaConfig, layer: number, site: LinearSite): MlcSiteSource {
  const C = c.dim;
  const H = c.hiddenDim;
  const KV = kvDim(c);
  const p = `model.layers.${layer}`;
  const qkv = `${p}.self_attn.qkv_proj`;
  const gu = `${p}.mlp.gate_up_proj`;
  switch (site) {
    case 'wq':
      return { base: qkv, rowStart: 0, rows: C, cols: C, ropeHeads: c.nHeads };
    case 'wk':
      return { base: qkv, rowStart: C, rows: KV, cols: C, ropeHeads: c.nKvHeads };
    case 'wv':
      return { base: qkv, rowStart: C + KV, rows: KV, cols: C, ropeHeads: null };
    case 'wo':
      return { base: `${p}.self_attn.o_proj`, rowStart: 0, rows: C, cols: C, ropeHeads: null };
    case 'w1':
      return { base: gu, rowStart: 0, rows: H, cols: C, ropeHeads: null };
    case 'w3':
      return { base: gu, rowStart: H, rows: H, cols: C, ropeHeads: null };
    case 'w2':
      return { base: `${p}.mlp.down_proj`, rowStart: 0, rows: C, cols: H, ropeHeads: null };
  }
}

// ---------------------------------------------------------------------------------------------
// Parsing the two JSON files

const MAX_JSON_BYTES = 64 * 1024 * 1024;
const fmt = (n: number): string => n.toLocaleString('en-US');

function parseJsonObject(bytes: Uint8Array, name: string, what: string): Record<string, unknown> {
  let j: unknown;
  try {
    j = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new EngineError(
      'BAD_FILE',
      `${name} is not JSON, so it is not ${what}: pick the file web-llm / MLC LLM wrote.`,
    );
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j))
    throw new EngineError('BAD_FILE', `${name} is not a JSON object, so it is not ${what}.`);
  return j as Record<string, unknown>;
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Checks the manifest's structure, dtypes and formats; throws BAD_FILE naming the bad entry. */
export function parseMlcManifest(bytes: Uint8Array, name = 'tensor-cache.json'): MlcManifest {
  const j = parseJsonObject(bytes, name, 'an MLC tensor cache manifest');
  const bad = (what: string): never => {
    throw new EngineError(
      'BAD_FILE',
      `${name}: ${what}. The manifest is damaged or from an MLC version dust2gold does not know; download the model again.`,
    );
  };
  if (!Array.isArray(j.records)) bad('it has no "records" list of shards');
  const shards: MlcShard[] = [];
  (j.records as unknown[]).forEach((s, i) => {
    if (!isObj(s)) return bad(`shard ${i} is not an object`);
    if (typeof s.dataPath !== 'string' || s.dataPath === '' || s.dataPath.includes('..'))
      return bad(`shard ${i} has no valid dataPath`);
    const at = `shard ${s.dataPath}`;
    if (s.format !== 'raw-shard') return bad(`${at} has format "${String(s.format)}", expected "raw-shard"`);
    if (!isCount(s.nbytes)) return bad(`${at} has no valid nbytes`);
    if (!Array.isArray(s.records)) return bad(`${at} has no records`);
    const records: MlcRecord[] = (s.records as unknown[]).map((r, k) => {
      if (!isObj(r) || typeof r.name !== 'string') return bad(`${at}: record ${k} has no name`);
      const rn = `tensor ${r.name} (${s.dataPath})`;
      if (!Array.isArray(r.shape) || !r.shape.every(isCount)) return bad(`${rn} has no valid shape`);
      if (typeof r.dtype !== 'string' || !(r.dtype in DTYPE_BYTES))
        return bad(
          `${rn} has dtype "${String(r.dtype)}"; dust2gold reads uint32, float16, float32 and bfloat16 (the q4f16_1 / q4f32_1 builds)`,
        );
      if (r.format !== 'raw' && r.format !== 'f32-to-bf16')
        return bad(`${rn} has format "${String(r.format)}"; known formats are "raw" and "f32-to-bf16"`);
      if (!isCount(r.nbytes) || !isCount(r.byteOffset)) return bad(`${rn} has no valid nbytes / byteOffset`);
      const dtype = r.dtype as MlcDtype;
      const shape = r.shape as number[];
      const want = shape.reduce((a, b) => a * b, 1) * storedElementBytes(dtype, r.format);
      if (r.nbytes !== want)
        return bad(
          `${rn} has nbytes ${fmt(r.nbytes)}, but shape [${shape.join(', ')}] of ${dtype} needs ${fmt(want)}`,
        );
      return { name: r.name, shape, dtype, format: r.format, nbytes: r.nbytes, byteOffset: r.byteOffset };
    });
    const shard: MlcShard = { dataPath: s.dataPath, format: 'raw-shard', nbytes: s.nbytes, records };
    if (typeof s.md5sum === 'string') shard.md5sum = s.md5sum;
    shards.push(shard);
  });
  return { metadata: isObj(j.metadata) ? j.metadata : {}, records: shards };
}

/** What mlc-chat-config.json says, as our config. */
export interface MlcChatConfig {
  config: LlamaConfig;
  quantization: MlcQuantization;
  /** The whole file, for fields we do not map (conv_template, tokenizer_files, ...). */
  raw: Record<string, unknown>;
}

/**
 * mlc-chat-config.json → LlamaConfig. Field names from mlc_llm's LlamaConfig (llama_model.py):
 * model_config.{hidden_size, intermediate_size, num_attention_heads, num_hidden_layers,
 * num_key_value_heads (0 = num_attention_heads), head_dim, rms_norm_eps, vocab_size,
 * tie_word_embeddings, position_embedding_base (0 or absent: rope_theta, else 10000),
 * rope_scaling, context_window_size (else max_position_embeddings), tensor_parallel_shards}.
 * Throws BAD_FILE for another architecture, quantization, RoPE scaling or sharding.
 */
export function parseMlcChatConfig(bytes: Uint8Array, name = MLC_CHAT_CONFIG): MlcChatConfig {
  const raw = parseJsonObject(bytes, name, 'an MLC chat configuration');
  const refuse = (what: string): never => {
    throw new EngineError('BAD_FILE', `${name}: ${what}`);
  };
  if (raw.model_type !== 'llama')
    refuse(
      `this is a "${String(raw.model_type ?? 'unknown')}" model; dust2gold loads MLC LLaMA models only (model_type "llama"), e.g. Llama-2-7b-chat-hf-q4f16_1-MLC.`,
    );
  const quantization = raw.quantization;
  if (typeof quantization !== 'string' || !(MLC_QUANTIZATIONS as readonly string[]).includes(quantization))
    refuse(
      `the weights are quantized as "${String(quantization)}"; dust2gold reads q4f16_1 and q4f32_1. Pick the q4f16_1 (or q4f32_1) build of this model.`,
    );
  const mc = raw.model_config;
  if (!isObj(mc)) return refuse('it has no "model_config" section; it was not written by MLC LLM.');
  const int = (k: string, dflt?: number): number => {
    const v = mc[k] ?? dflt;
    if (typeof v !== 'number' || !Number.isSafeInteger(v))
      return refuse(`model_config.${k} is ${JSON.stringify(v)}, expected an integer.`);
    return v;
  };
  const dim = int('hidden_size');
  const nHeads = int('num_attention_heads');
  let nKvHeads = int('num_key_value_heads', 0);
  if (nKvHeads === 0) nKvHeads = nHeads;
  const headDim = int('head_dim', 0);
  if (headDim !== 0 && nHeads > 0 && headDim * nHeads !== dim)
    refuse(
      `head_dim ${headDim} × ${nHeads} heads is not hidden_size ${dim}; dust2gold's LLaMA needs head_dim = hidden_size / heads.`,
    );
  const shards = int('tensor_parallel_shards', 1);
  if (shards !== 1)
    refuse(
      `the weights are split for ${shards} GPUs (tensor_parallel_shards); use a build converted for one (web-llm's prebuilt models are).`,
    );
  const rs = mc.rope_scaling;
  if (isObj(rs) && 'rope_type' in rs)
    refuse(
      `the model uses RoPE scaling "${String(rs.rope_type)}" (as Llama 3.1 and later do), which dust2gold does not implement. Pick Llama 2 or Llama 3 (8B).`,
    );
  let ropeTheta = mc.position_embedding_base;
  if (ropeTheta === undefined || ropeTheta === 0) ropeTheta = mc.rope_theta ?? 10000;
  const normEps = mc.rms_norm_eps;
  let ctx = mc.context_window_size;
  if (typeof ctx !== 'number' || ctx <= 0) ctx = raw.context_window_size;
  if (typeof ctx !== 'number' || ctx <= 0) ctx = mc.max_position_embeddings;
  if (typeof ctx !== 'number' || !Number.isSafeInteger(ctx) || ctx <= 0)
    refuse('it gives no context_window_size (nor max_position_embeddings).');
  const tie = mc.tie_word_embeddings ?? false;
  if (typeof tie !== 'boolean')
    refuse(`model_config.tie_word_embeddings is ${JSON.stringify(tie)}, expected true or false.`);
  const config: LlamaConfig = {
    dim,
    hiddenDim: int('intermediate_size'),
    nLayers: int('num_hidden_layers'),
    nHeads,
    nKvHeads,
    vocabSize: int('vocab_size'),
    maxSeqLen: ctx as number,
    ropeTheta: typeof ropeTheta === 'number' ? ropeTheta : NaN,
    normEps: typeof normEps === 'number' ? normEps : NaN,
    sharedClassifier: tie as boolean,
  };
  validateConfig(config, 'BAD_FILE', name);
  return { config, quantization: quantization as MlcQuantization, raw };
}

// ---------------------------------------------------------------------------------------------
// Opening a model folder and reading tensors

interface Located {
  shard: MlcShard;
  record: MlcRecord;
  source: ByteSource;
}

export interface MlcModel {
  readonly folder: MlcFolder;
  readonly config: LlamaConfig;
  readonly quantization: MlcQuantization;
  readonly chatConfig: Readonly<Record<string, unknown>>;
  readonly manifestName: MlcManifestName;
  readonly manifest: MlcManifest;
  /** Tensor name → its record, shard and opened shard file. */
  readonly tensors: ReadonlyMap<string, Located>;
}

/** ByteSource promises exactly `length` bytes; checked again, since a folder may hand out any source. */
async function readExactly(src: ByteSource, offset: number, length: number): Promise<Uint8Array> {
  const b = length === 0 ? new Uint8Array(0) : await src.read(offset, length);
  if (b.length < length)
    throw new EngineError(
      'TRUNCATED_FILE',
      `${src.name} ends after ${fmt(offset + b.length)} of ${fmt(offset + length)} bytes: the download stopped early; fetch it again.`,
    );
  return b.length === length ? b : b.subarray(0, length);
}

async function readJson(src: ByteSource): Promise<Uint8Array> {
  if (src.size > MAX_JSON_BYTES)
    throw new EngineError(
      'BAD_FILE',
      `${src.name} is ${formatBytes(src.size)}, too large for an MLC configuration or manifest: pick the model's folder, not a weight file.`,
    );
  return readExactly(src, 0, src.size);
}

/**
 * Opens an MLC model folder: parses mlc-chat-config.json and the manifest (tensor-cache.json, or
 * ndarray-cache.json), opens every shard and checks, before any weight is read, that each shard has
 * the size the manifest gives, every record lies inside its shard, and every tensor our LLaMA needs
 * is there with MLC's shape and dtype.
 */
export async function openMlc(folder: MlcFolder): Promise<MlcModel> {
  const cfgSrc = await folder.open(MLC_CHAT_CONFIG);
  if (!cfgSrc)
    throw new EngineError(
      'BAD_FILE',
      `${folder.name} has no ${MLC_CHAT_CONFIG}: pick the folder of a web-llm / MLC LLM model (it holds mlc-chat-config.json, tensor-cache.json and params_shard_*.bin).`,
    );
  const { config, quantization, raw } = parseMlcChatConfig(await readJson(cfgSrc), cfgSrc.name);
  let manifestName: MlcManifestName | null = null;
  let mSrc: ByteSource | null = null;
  for (const m of MLC_MANIFESTS) {
    mSrc = await folder.open(m);
    if (mSrc) {
      manifestName = m;
      break;
    }
  }
  if (!mSrc || !manifestName)
    throw new EngineError(
      'BAD_FILE',
      `${folder.name} has ${MLC_CHAT_CONFIG} but no tensor-cache.json (or ndarray-cache.json): the weights were not downloaded; fetch the model again.`,
    );
  const manifest = parseMlcManifest(await readJson(mSrc), mSrc.name);

  const tensors = new Map<string, Located>();
  for (const shard of manifest.records) {
    const source = await folder.open(shard.dataPath);
    if (!source)
      throw new EngineError(
        'BAD_FILE',
        `${folder.name}: ${manifestName} lists ${shard.dataPath}, but there is no such file: the download is incomplete; fetch the model again.`,
      );
    if (source.size < shard.nbytes)
      throw new EngineError(
        'TRUNCATED_FILE',
        `${source.name} ends after ${fmt(source.size)} of ${fmt(shard.nbytes)} bytes: the download stopped early; fetch it again.`,
      );
    if (source.size > shard.nbytes)
      throw new EngineError(
        'BAD_FILE',
        `${source.name} has ${fmt(source.size)} bytes but ${manifestName} says ${fmt(shard.nbytes)}: the shard belongs to another model or version; fetch the model again.`,
      );
    for (const record of shard.records) {
      const end = record.byteOffset + record.nbytes;
      if (end > source.size)
        throw new EngineError(
          'TRUNCATED_FILE',
          `${source.name} ends after ${fmt(source.size)} bytes, but tensor ${record.name} lies at bytes ${fmt(record.byteOffset)}–${fmt(end)}: the shard is incomplete or the manifest belongs to another download; fetch the model again.`,
        );
      if (tensors.has(record.name))
        throw new EngineError(
          'BAD_FILE',
          `${manifestName} lists tensor ${record.name} twice: the manifest is damaged.`,
        );
      tensors.set(record.name, { shard, record, source });
    }
  }

  const need = (name: string, shape: number[], dtypes: readonly MlcDtype[]): void => {
    const t = tensors.get(name);
    if (!t)
      throw new EngineError(
        'BAD_FILE',
        `${folder.name}: ${manifestName} has no tensor ${name}: this is not a complete MLC ${quantization} LLaMA.`,
      );
    const { record } = t;
    if (record.shape.length !== shape.length || record.shape.some((d, i) => d !== shape[i]))
      throw new EngineError(
        'SHAPE_MISMATCH',
        `${name} has shape [${record.shape.join(', ')}] but ${MLC_CHAT_CONFIG} implies [${shape.join(', ')}]: the weights and the configuration belong to different models.`,
      );
    if (!dtypes.includes(record.dtype))
      throw new EngineError(
        'BAD_FILE',
        `${name} is ${record.dtype}; ${quantization} stores it as ${dtypes.join(' or ')}. The manifest and ${MLC_CHAT_CONFIG} disagree; fetch the model again.`,
      );
  };
  const floats: MlcDtype[] = ['float16', 'float32', 'bfloat16'];
  for (const p of mlcParams(config)) {
    if (p.kind === 'vector') need(p.name, [p.length], floats);
    else {
      need(`${p.base}.q_weight`, [p.rows, mlcWordsPerRow(p.cols)], ['uint32']);
      need(`${p.base}.q_scale`, [p.rows, mlcGroupsPerRow(p.cols)], floats);
    }
  }
  return { folder, config, quantization, chatConfig: raw, manifestName, manifest, tensors };
}

function locate(model: MlcModel, name: string): Located {
  const t = model.tensors.get(name);
  if (!t) throw new EngineError('BAD_ARGUMENT', `${model.folder.name} has no tensor ${name}.`);
  return t;
}

/** Elements [start, start + count) of a tensor, as stored (bytes). */
async function readElements(
  model: MlcModel,
  name: string,
  start: number,
  count: number,
): Promise<Uint8Array> {
  const { record, source } = locate(model, name);
  const eb = storedElementBytes(record.dtype, record.format);
  const total = record.nbytes / eb;
  if (start < 0 || count < 0 || start + count > total)
    throw new EngineError(
      'BAD_ARGUMENT',
      `${name}: elements ${start}..${start + count} are outside its ${total}.`,
    );
  // a copy of our own: aligned for typed-array views whatever the source handed out
  return (await readExactly(source, record.byteOffset + start * eb, count * eb)).slice();
}

/** Decodes stored floats (f16, bf16, f32 or f32-to-bf16) to f32. */
export function decodeMlcFloats(dtype: MlcDtype, format: MlcFormat, bytes: Uint8Array): Float32Array {
  const own = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  const eb = storedElementBytes(dtype, format);
  const n = own.length / eb;
  if (dtype === 'float32' && eb === 4) return new Float32Array(own.buffer, own.byteOffset, n).slice();
  if (dtype === 'uint32')
    throw new EngineError('BAD_ARGUMENT', 'decodeMlcFloats: uint32 is not a float dtype.');
  const h = new Uint16Array(own.buffer, own.byteOffset, n);
  const out = new Float32Array(n);
  const f = dtype === 'float16' ? f16ToF32 : bf16ToF32;
  for (let i = 0; i < n; i++) out[i] = f(h[i]!);
  return out;
}

/** A float tensor (a norm weight), decoded to f32. */
export async function readMlcVector(model: MlcModel, name: string): Promise<Float32Array> {
  const { record } = locate(model, name);
  const n = record.shape.reduce((a, b) => a * b, 1);
  return decodeMlcFloats(record.dtype, record.format, await readElements(model, name, 0, n));
}

/**
 * Rows [rowStart, rowStart + rowCount) of a group-quantized matrix (`base` without the .q_weight /
 * .q_scale suffix), read from the shards in two range reads.
 */
export async function readMlcQ4(
  model: MlcModel,
  base: string,
  rowStart = 0,
  rowCount?: number,
): Promise<MlcQ4> {
  const p = mlcParams(model.config).find((x) => x.kind === 'q4' && x.base === base);
  if (!p || p.kind !== 'q4')
    throw new EngineError('BAD_ARGUMENT', `readMlcQ4: ${base} is not a quantized matrix.`);
  const rows = rowCount ?? p.rows - rowStart;
  if (rowStart < 0 || rows < 0 || rowStart + rows > p.rows)
    throw new EngineError(
      'BAD_ARGUMENT',
      `readMlcQ4: rows ${rowStart}..${rowStart + rows} of ${base} (${p.rows} rows).`,
    );
  const W = mlcWordsPerRow(p.cols);
  const G = mlcGroupsPerRow(p.cols);
  const qb = await readElements(model, `${base}.q_weight`, rowStart * W, rows * W);
  const s = locate(model, `${base}.q_scale`).record;
  const sb = await readElements(model, `${base}.q_scale`, rowStart * G, rows * G);
  return {
    rows,
    cols: p.cols,
    qWeight: new Uint32Array(qb.buffer, qb.byteOffset, rows * W),
    scale: decodeMlcFloats(s.dtype, s.format, sb),
  };
}

/**
 * One of our layer matrices (LINEAR_SITES) as MLC stores it: its row block of the fused qkv_proj /
 * gate_up_proj (only those rows are read), q and k rows reordered to our RoPE layout. Exact: no
 * value changes, since quantization groups run along rows.
 */
export async function readMlcSite(model: MlcModel, layer: number, site: LinearSite): Promise<MlcQ4> {
  const c = model.config;
  if (!Number.isInteger(layer) || layer < 0 || layer >= c.nLayers)
    throw new EngineError('BAD_ARGUMENT', `readMlcSite: layer ${layer} of ${c.nLayers}.`);
  const src = mlcSiteSource(c, layer, site);
  const m = await readMlcQ4(model, src.base, src.rowStart, src.rows);
  return src.ropeHeads === null ? m : permuteMlcRows(m, ropeRowOrder(src.ropeHeads, headSize(c)));
}

/** Beyond this many bytes of f32, readMlcWeightsF32 refuses (a 7B model would need 27 GB). */
export const MAX_F32_MODEL_BYTES = 2 * 1024 ** 3;

/**
 * The whole model dequantized to f32 in our layout: the CPU reference, for small models and tests.
 * Large models go matrix by matrix (readMlcSite + mlcQ4ToQ4_0 or dequantizeMlcQ4).
 */
export async function readMlcWeightsF32(model: MlcModel): Promise<LlamaWeightsF32> {
  const c = model.config;
  const sizes = weightSizes(c);
  const total = Object.entries(sizes).reduce(
    (a, [k, n]) => a + (k === 'wcls' && c.sharedClassifier ? 0 : 4 * n),
    0,
  );
  if (total > MAX_F32_MODEL_BYTES)
    throw new EngineError(
      'LIMIT_EXCEEDED',
      `${model.folder.name} needs ${formatBytes(total)} as f32, more than the ${formatBytes(MAX_F32_MODEL_BYTES)} the f32 reference holds: load it quantized (q4) instead.`,
    );
  const C = c.dim;
  const w = {
    tokenEmbedding: dequantizeMlcQ4(await readMlcQ4(model, 'model.embed_tokens')),
    rmsAtt: new Float32Array(sizes.rmsAtt),
    rmsFfn: new Float32Array(sizes.rmsFfn),
    rmsFinal: await readMlcVector(model, 'model.norm.weight'),
  } as LlamaWeightsF32;
  for (const site of LINEAR_SITES) w[site] = new Float32Array(sizes[site]);
  for (let l = 0; l < c.nLayers; l++) {
    w.rmsAtt.set(await readMlcVector(model, `model.layers.${l}.input_layernorm.weight`), l * C);
    w.rmsFfn.set(await readMlcVector(model, `model.layers.${l}.post_attention_layernorm.weight`), l * C);
    for (const site of LINEAR_SITES) {
      const m = dequantizeMlcQ4(await readMlcSite(model, l, site));
      w[site].set(m, l * m.length);
    }
  }
  w.wcls = c.sharedClassifier ? w.tokenEmbedding : dequantizeMlcQ4(await readMlcQ4(model, 'lm_head'));
  return w;
}

// ---------------------------------------------------------------------------------------------
// Sources in memory, and web-llm's cache keys

/** A folder of files in memory (e.g. what tools/mlc-write.ts returns). */
export function memoryFolder(name: string, files: ReadonlyMap<string, Uint8Array>): MlcFolder {
  return {
    name,
    open: (path) => {
      const b = files.get(path);
      return Promise.resolve(b ? fromBytes(b, `${name}/${path}`) : null);
    },
  };
}

export * from './mlc-cache.ts';
