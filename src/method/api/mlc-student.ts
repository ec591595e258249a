/**
 * web-llm's MLC build of a LLaMA (q4f16_1 / q4f32_1) as a big student (big-student.ts), read from
 * the browser's Cache Storage where web-llm keeps it (src/app/lib/mlc-download.ts
 * `cachedMlcFolder`: web-llm's own cache names and keys, so what web-llm downloaded for the teacher
 * serves the student, and what Models' Download put there serves web-llm). Nothing is fetched here:
 * a model that is not in the cache is refused with "download it first".
 *
 * Opening reads mlc-chat-config.json (the config; a non-LLaMA model or a quantization other than
 * q4f16_1 / q4f32_1 is BAD_FILE), the manifest (every shard present at its size), and the tokenizer
 * (tokenizer.json, else tokenizer.model: src/engine/io/spm-json.ts, spm-files.ts). What each
 * tensor becomes on the GPU is `mlcLoadPlan` (src/engine/io/load-mlc.ts): q4f16_1 matrices as
 * stored, q4f32_1 ones and the embedding repacked to q4_0 (the same 0.5625 bytes per value), rows
 * not a multiple of 32 in f32, norms f32 — which is what the planner counts.
 *
 * @example
 *   const s = await openMlcStudent({ mlcUrl: 'https://huggingface.co/mlc-ai/Llama-2-7b-chat-hf-q4f16_1-MLC' },
 *     null, caches, be.maxTensorBytes);
 *   s.facts().classes; // [{ name: 'embed_tokens', file: { q4f16_1: 1 }, gpu: ['q4_0 (repacked)'], … }, …]
 *   const model = await s.load(be, { onProgress, signal });
 */
import { cachedMlcFolder, mlcModelId, type CacheStorageLike } from '../../app/lib/mlc-download.ts';
import type { GpuBackend } from '../../engine/backend/gpu.ts';
import { EngineError } from '../../engine/errors.ts';
import { byteSize, type DType, type Tensor } from '../../engine/gpu/tensor.ts';
import type { ByteSource } from '../../engine/io/bytesource.ts';
import { loadLlamaMlc, mlcLoadPlan, type MlcLoadStep } from '../../engine/io/load-mlc.ts';
import {
  MLC_CHAT_CONFIG,
  MLC_MANIFESTS,
  mlcCacheKeys,
  openMlc,
  parseMlcChatConfig,
  type MlcFolder,
  type MlcManifestName,
  type MlcModel,
  type MlcQuantization,
} from '../../engine/io/mlc.ts';
import { spmTokenizerFromModelProto } from '../../engine/io/spm-files.ts';
import { spmTokenizerFromHfJson } from '../../engine/io/spm-json.ts';
import type { SpmTokenizer } from '../../engine/io/spm.ts';
import { paramCount, type LlamaConfig } from '../../engine/model/config.ts';
import { weightLabel, type LlamaModel } from '../../engine/model/llama.ts';
import type { WeightType, WeightTypes } from '../../engine/plan.ts';
import {
  hasByteFallback,
  tensorClasses,
  type BigInspection,
  type BigStudent,
  type StudentLoadOptions,
  type TensorClass,
} from './big-student.ts';

/** The tokenizer files an MLC folder may carry, in the order they are tried. */
export const MLC_TOKENIZER_FILES = ['tokenizer.json', 'tokenizer.model'] as const;

/** What an MLC model in the cache says, for the Models view. */
export interface MlcFacts {
  /** The model URL as web-llm keys its files (…/resolve/main/). */
  base: string;
  /** The model's id: the URL's last part before /resolve/ ("Llama-2-7b-chat-hf-q4f16_1-MLC"). */
  id: string;
  quantization: MlcQuantization;
  manifest: MlcManifestName;
  shards: number;
  /** Bytes of the shards in the cache. */
  fileBytes: number;
  /** Bytes a load reads (the records it needs; what its progress counts). */
  dataBytes: number;
  config: LlamaConfig;
  params: number;
  classes: TensorClass[];
  tokenizer: {
    file: (typeof MLC_TOKENIZER_FILES)[number];
    tokens: number;
    byteFallback: boolean;
    bos: number;
    eos: number;
  };
}

export type MlcInspection = BigInspection<MlcFacts>;

export { mlcModelId };

/** Where an MLC model comes from (StudentSource's MLC fields). */
export interface MlcSource {
  /** A model URL as web-llm's model list names it, read from the browser's Cache Storage. */
  mlcUrl?: string;
  key?: string;
  name?: string;
}

/** The MLC part of a tensor's name: 'model.layers.3.self_attn.qkv_proj' → 'qkv_proj'. */
function mlcClass(step: MlcLoadStep): string {
  const short = step.tensor
    .replace(/^model\.layers\.\d+\.(self_attn|mlp)\./, '')
    .replace(/^model\.layers\.\d+\./, '')
    .replace(/^model\./, '')
    .replace(/\.weight$/, '');
  const part: Partial<Record<string, string>> = { wq: 'q', wk: 'k', wv: 'v', w1: 'gate', w3: 'up' };
  const p = part[step.weight];
  return p ? `${short}: ${p}` : short;
}

function gpuHow(step: MlcLoadStep): string {
  if (step.shape.length === 1) return 'f32';
  if (step.dtype === 'q4f16_1') return 'q4f16_1 (as stored)';
  if (step.dtype === 'q4_0') return 'q4_0 (repacked)';
  return `${step.dtype} (dequantized)`;
}

/** The planner's weight types for a load plan (q4f16_1 has q4_0's size and 32-value groups). */
export function mlcPlanWeightTypes(steps: readonly MlcLoadStep[]): WeightTypes {
  const tensors: Record<string, WeightType> = {};
  const count = new Map<WeightType, number>();
  for (const s of steps) {
    const type: WeightType = s.dtype === 'q4f16_1' ? 'q4_0' : (s.dtype as WeightType); // f32 or q4_0 otherwise
    tensors[weightLabel(s.weight, s.layer)] = type;
    if (s.shape.length === 2 && s.weight !== 'tokenEmbedding') count.set(type, (count.get(type) ?? 0) + 1);
  }
  const matrices = [...count].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'f32';
  return { matrices, tensors };
}

/** An MLC model opened from the cache for planning and loading. */
export class MlcStudent implements BigStudent<MlcFacts> {
  readonly format = 'mlc';
  readonly smaller = 'Pick a smaller model (e.g. TinyLlama-1.1B-Chat-v1.0-q4f16_1-MLC).';
  readonly steps: MlcLoadStep[];
  readonly weights: WeightTypes;
  constructor(
    readonly key: string,
    readonly base: string,
    readonly model: MlcModel,
    readonly tokenizer: SpmTokenizer,
    readonly tokenizerFile: (typeof MLC_TOKENIZER_FILES)[number],
  ) {
    this.steps = mlcLoadPlan(model);
    this.weights = mlcPlanWeightTypes(this.steps);
  }

  get config(): LlamaConfig {
    return this.model.config;
  }

  get what(): string {
    return mlcModelId(this.base);
  }

  get name(): string {
    return this.what;
  }

  facts(): MlcFacts {
    const m = this.model;
    const tok = this.tokenizer;
    return {
      base: this.base,
      id: this.what,
      quantization: m.quantization,
      manifest: m.manifestName,
      shards: m.manifest.records.length,
      fileBytes: m.manifest.records.reduce((a, s) => a + s.nbytes, 0),
      dataBytes: this.steps.reduce((a, s) => a + s.bytes, 0),
      config: m.config,
      params: paramCount(m.config),
      classes: tensorClasses(
        this.steps.map((s) => ({
          name: mlcClass(s),
          file: s.shape.length === 1 ? m.tensors.get(s.tensor)!.record.dtype : m.quantization,
          gpu: gpuHow(s),
          bytes: byteSize(s.shape, s.dtype as DType),
        })),
      ),
      tokenizer: {
        file: this.tokenizerFile,
        tokens: tok.vocabSize,
        byteFallback: hasByteFallback(tok),
        bos: tok.bos,
        eos: tok.eos,
      },
    };
  }

  load(be: GpuBackend, opts: StudentLoadOptions): Promise<LlamaModel<Tensor>> {
    return loadLlamaMlc(be, this.model, {
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  }
}

async function readAll(src: ByteSource): Promise<Uint8Array> {
  return src.size === 0 ? new Uint8Array(0) : src.read(0, src.size);
}

function browserCaches(): CacheStorageLike {
  const c = (globalThis as { caches?: unknown }).caches;
  if (!c)
    throw new EngineError(
      'BAD_ARGUMENT',
      'This browser gives no Cache Storage here (a private window, or a page not served over HTTPS), so no web-llm model can be read from it: open dust2gold in a normal window over HTTPS or localhost.',
    );
  return c as CacheStorageLike;
}

/**
 * Opens the MLC model at `src.mlcUrl` from web-llm's cache (`caches`: the browser's by default).
 * `previous`, when it has the same key, is returned again (nothing is read). Throws, with nothing
 * allocated: BAD_ARGUMENT (not in the cache: download it first; not an absolute URL),
 * TRUNCATED_FILE (only part of it is in the cache: a shard, the manifest or the tokenizer missing,
 * or a shard shorter than the manifest says), BAD_FILE (not a LLaMA, another quantization, a
 * damaged file), VOCAB_MISMATCH, SHAPE_MISMATCH.
 */
export async function openMlcStudent(
  src: MlcSource,
  previous: BigStudent<unknown> | null,
  caches: CacheStorageLike | undefined,
): Promise<MlcStudent> {
  const url = src.mlcUrl;
  if (!url)
    throw new EngineError('BAD_ARGUMENT', 'Give the URL of a web-llm model (as its model list names it).');
  const keys = mlcCacheKeys(url);
  const key = src.key ?? `mlc:${keys.base}`;
  if (previous instanceof MlcStudent && previous.key === key) return previous;
  const id = mlcModelId(keys.base);
  const cached = cachedMlcFolder(url, caches ?? browserCaches());
  const partial = (file: string) =>
    new EngineError(
      'TRUNCATED_FILE',
      `${id} is only partly in this browser's cache (${file} is missing): press Download to fetch the rest — the files already kept are not fetched again.`,
    );
  const cfg = await cached.open(MLC_CHAT_CONFIG);
  if (!cfg)
    throw new EngineError(
      'BAD_ARGUMENT',
      `${id} is not in this browser's cache yet: download it first (Models, "MLC / web-llm", Download), or let web-llm download it. Nothing is fetched from the network when a model is read.`,
    );
  // the config alone says what the model is: a wrong one is refused as such, not as a partial download
  parseMlcChatConfig(await readAll(cfg), MLC_CHAT_CONFIG);
  const known = new Set<string>([MLC_CHAT_CONFIG, ...MLC_MANIFESTS, ...MLC_TOKENIZER_FILES]);
  // a shard the manifest lists but the cache lacks: an interrupted download
  const folder: MlcFolder = {
    name: id,
    async open(path) {
      const s = path === MLC_CHAT_CONFIG ? cfg : await cached.open(path);
      if (!s && !known.has(path)) throw partial(path);
      return s;
    },
  };
  let hasManifest = false;
  for (const m of MLC_MANIFESTS) if (!hasManifest && (await cached.open(m))) hasManifest = true;
  if (!hasManifest) throw partial(MLC_MANIFESTS[0]);
  const model = await openMlc(folder);
  let tokenizer: SpmTokenizer | null = null;
  let tokenizerFile: (typeof MLC_TOKENIZER_FILES)[number] = 'tokenizer.json';
  for (const f of MLC_TOKENIZER_FILES) {
    const t = await cached.open(f);
    if (!t) continue;
    const bytes = await readAll(t);
    tokenizer =
      f === 'tokenizer.json'
        ? spmTokenizerFromHfJson(bytes, f, model.config.vocabSize, id)
        : spmTokenizerFromModelProto(bytes, f, model.config.vocabSize, id);
    tokenizerFile = f;
    break;
  }
  if (!tokenizer) throw partial('tokenizer.json or tokenizer.model');
  return new MlcStudent(key, keys.base, model, tokenizer, tokenizerFile);
}
