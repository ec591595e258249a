/**
 * A GGUF LLaMA as a big student (big-student.ts): llama.cpp's file as a dropped File / Blob (read in
 * chunks, never whole) or a URL (HTTP Range requests). Opening reads the header only: the config,
 * the SentencePiece tokenizer from the metadata, and what each tensor becomes on the GPU
 * (`ggufLoadPlan`: blocks as stored, requantized, or f32; F16/F32 matrices over one binding are
 * quantized while loading, q8_0 else q4_0), which is what the planner counts.
 *
 * @example
 *   const g = await openGgufStudent({ gguf: file }, null, be.maxTensorBytes);
 *   g.facts().classes; // [{ name: 'token_embd', file: { Q4_0: 1 }, gpu: ['q4_0 (blocks as stored)'], … }, …]
 *   const model = await g.load(be, { onProgress, signal });
 */
import type { GpuBackend } from '../../engine/backend/gpu.ts';
import { EngineError } from '../../engine/errors.ts';
import type { Tensor } from '../../engine/gpu/tensor.ts';
import { fromBlob, fromUrl, type ByteSource } from '../../engine/io/bytesource.ts';
import { readGgufHeader, type GgufFile } from '../../engine/io/gguf.ts';
import { llamaConfigFromGguf, metaString } from '../../engine/io/gguf-llama.ts';
import {
  ggufLoadPlan,
  ggufPlanWeightTypes,
  loadLlamaGguf,
  type GgufLoadOptions,
  type GgufLoadTensor,
} from '../../engine/io/load-gguf.ts';
import { spmTokenizerFromGguf, type SpmTokenizer } from '../../engine/io/spm.ts';
import { paramCount, type LlamaConfig } from '../../engine/model/config.ts';
import type { LlamaModel } from '../../engine/model/llama.ts';
import type { WeightTypes } from '../../engine/plan.ts';
import {
  hasByteFallback,
  tensorClasses,
  type BigInspection,
  type BigStudent,
  type StudentLoadOptions,
  type TensorClass,
} from './big-student.ts';

/** What a GGUF header says, for the Models view. */
export interface GgufFacts {
  file: string;
  fileBytes: number;
  version: number;
  architecture: string;
  /** general.name, when the file has one. */
  title: string | null;
  tensors: number;
  /** Bytes of tensor data (what a load reads). */
  dataBytes: number;
  config: LlamaConfig;
  params: number;
  classes: TensorClass[];
  tokenizer: { model: string; tokens: number; byteFallback: boolean; bos: number; eos: number };
}

export type GgufInspection = BigInspection<GgufFacts>;

/** Where a GGUF comes from (StudentSource's GGUF fields). */
export interface GgufSource {
  /** A GGUF LLaMA as a File / Blob: read in chunks (never whole); a Blob crosses comlink without a copy. */
  gguf?: Blob;
  /** A GGUF LLaMA by URL, read with HTTP Range requests. */
  ggufUrl?: string;
  key?: string;
  name?: string;
}

/** A tensor's class: 'blk.3.attn_q.weight' → 'attn_q'. */
function tensorClass(name: string): string {
  return name.replace(/^blk\.\d+\./, '').replace(/\.weight$/, '');
}

function ggufFacts(
  file: GgufFile,
  config: LlamaConfig,
  load: readonly GgufLoadTensor[],
  tok: SpmTokenizer,
): GgufFacts {
  const classes = tensorClasses(
    load.map((t) => ({
      name: tensorClass(t.info.name),
      file: t.info.typeName,
      gpu:
        t.how === 'blocks'
          ? `${t.dtype} (blocks as stored)`
          : t.how === 'requantize'
            ? `${t.dtype} (requantized)`
            : t.dtype,
      bytes: t.bytes,
    })),
  );
  return {
    file: file.name,
    fileBytes: file.size,
    version: file.version,
    architecture: metaString(file, 'general.architecture') ?? '',
    title: metaString(file, 'general.name') ?? null,
    tensors: file.tensors.length,
    dataBytes: file.tensors.reduce((a, t) => a + t.byteSize, 0),
    config,
    params: paramCount(config),
    classes,
    tokenizer: {
      model: metaString(file, 'tokenizer.ggml.model') ?? '',
      tokens: tok.vocabSize,
      byteFallback: hasByteFallback(tok),
      bos: tok.bos,
      eos: tok.eos,
    },
  };
}

/** A GGUF file opened for planning and loading: its header, source, config and load plan. */
export class GgufStudent implements BigStudent<GgufFacts> {
  readonly format = 'gguf';
  readonly smaller = 'Pick a smaller model or a more quantized file (Q4_0, Q4_K_M).';
  readonly weights: WeightTypes;
  constructor(
    readonly key: string,
    public src: ByteSource,
    readonly file: GgufFile,
    readonly config: LlamaConfig,
    readonly tokenizer: SpmTokenizer,
    readonly loadOpts: GgufLoadOptions,
    readonly plan: GgufLoadTensor[],
  ) {
    this.weights = ggufPlanWeightTypes(plan);
  }

  get what(): string {
    return this.file.name;
  }

  get name(): string {
    return this.file.name.replace(/\.gguf$/i, '');
  }

  facts(): GgufFacts {
    return ggufFacts(this.file, this.config, this.plan, this.tokenizer);
  }

  load(be: GpuBackend, opts: StudentLoadOptions): Promise<LlamaModel<Tensor>> {
    return loadLlamaGguf(be, this.file, this.src, {
      ...this.loadOpts,
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  }
}

/**
 * Opens a GGUF source: its header is read once per key (`previous`, when it has the same key, is
 * returned again; a Blob that crossed a worker boundary again is read from its new object).
 */
export async function openGgufStudent(
  src: GgufSource,
  previous: BigStudent<unknown> | null,
  maxTensorBytes: number,
): Promise<GgufStudent> {
  const blob = src.gguf;
  const url = src.ggufUrl;
  const fromPath = url ? decodeURIComponent(url.split(/[?#]/)[0]?.split('/').pop() ?? '') : '';
  const fileName = (blob as File | undefined)?.name || fromPath || src.name || 'model.gguf';
  const key = src.key ?? (blob ? `file:${fileName}:${blob.size}` : `url:${url ?? ''}`);
  const o = previous instanceof GgufStudent ? previous : null;
  if (o && o.key === key && (!blob || blob.size === o.src.size)) {
    // a Blob that crossed a worker boundary again is a new object for the same bytes: read from it
    if (blob) o.src = fromBlob(blob, o.src.name);
    return o;
  }
  let bytes: ByteSource;
  if (blob) bytes = fromBlob(blob, fileName);
  else if (url) bytes = await fromUrl(url, fetch, fileName);
  else throw new EngineError('BAD_ARGUMENT', 'Give a GGUF file or its URL to load.');
  const file = await readGgufHeader(bytes);
  const config = llamaConfigFromGguf(file);
  const tokenizer = spmTokenizerFromGguf(file, config.vocabSize, file.name);
  const max = maxTensorBytes;
  // F16 / F32 matrices too big for one binding are quantized while loading (q8_0, else q4_0)
  let loadOpts: GgufLoadOptions = {};
  let load = ggufLoadPlan(file, loadOpts, max, config);
  for (const f of ['q8_0', 'q4_0'] as const) {
    if (!load.some((t) => t.bytes > max && t.dtype === 'f32' && t.shape.length === 2)) break;
    loadOpts = { floatMatrices: f };
    load = ggufLoadPlan(file, loadOpts, max, config);
  }
  return new GgufStudent(key, bytes, file, config, tokenizer, loadOpts, load);
}
