/**
 * What a worker holds for the method's student: one GPU device, its backend and the loaded model
 * with its tokenizer. The inference worker's Solve and Compare engines share one runtime (one
 * device, one copy of the weights); the trainer worker has its own. Plain data in, plain data out:
 * nothing here reaches the UI but names and numbers.
 *
 * Three kinds of student: our safetensors model with its character tokenizer (the built-in
 * arith-student); a GGUF LLaMA (llama.cpp's file: a dropped File / Blob, read in chunks, or a URL
 * read with HTTP Range requests; gguf-student.ts) with the SentencePiece tokenizer from its
 * metadata; and web-llm's MLC build of a LLaMA (q4f16_1 / q4f32_1) from the browser's Cache Storage,
 * where web-llm or Models' Download keeps it (mlc-student.ts), with its tokenizer.json or
 * tokenizer.model. The last two are big students (big-student.ts): planned first (src/engine/plan.ts:
 * weights as they will sit on the GPU, the KV cache for `sequences` × `context`, activations,
 * against the device's limits and the memory budget); a refusal is a typed error carrying the
 * planner's suggestion, thrown before anything is allocated.
 *
 * @example
 *   const rt = await StudentRuntime.open(navigator.gpu);
 *   await rt.load({ modelUrl: '/models/arith-student.safetensors' });
 *   rt.model.config.dim; // 64
 *   const seen = await rt.inspectGguf({ gguf: file, plan: { sequences: 16, context: 512 } });
 *   seen.plan.verdict; // 'ok' | 'refused'
 *   await rt.load({ gguf: file, plan: { sequences: 16, context: 512 } }, { onProgress, signal });
 *   await rt.inspectMlc({ mlcUrl: 'https://huggingface.co/mlc-ai/Llama-2-7b-chat-hf-q4f16_1-MLC' });
 */
import type { CacheStorageLike } from '../../app/lib/mlc-download.ts';
import { fetchBytes } from '../../engine/api/inference.ts';
import { GpuBackend } from '../../engine/backend/gpu.ts';
import { EngineError, formatBytes } from '../../engine/errors.ts';
import type { DeviceRequest, GpuInfo } from '../../engine/gpu/device.ts';
import { Gpu } from '../../engine/gpu/gpu.ts';
import type { Tensor } from '../../engine/gpu/tensor.ts';
import type { ActType } from '../../engine/ops/act.ts';
import { CharTokenizer, checkTokenizerVocab } from '../../engine/io/chartok.ts';
import { readLlamaSafetensors } from '../../engine/io/checkpoint.ts';
import type { KvType } from '../../engine/kvcache.ts';
import { paramCount, type LlamaConfig } from '../../engine/model/config.ts';
import { destroyLlama, loadLlama, type LlamaModel } from '../../engine/model/llama.ts';
import type { LlamaWeightsF32 } from '../../engine/model/weights.ts';
import {
  BIG_KV,
  planBig,
  type BigPlanOptions,
  type BigStudent,
  type StudentLoadOptions,
  type StudentTokenizer,
} from './big-student.ts';
import { openGgufStudent, type GgufInspection } from './gguf-student.ts';
import { openMlcStudent, type MlcInspection } from './mlc-student.ts';

export {
  DEFAULT_CONTEXT,
  MAX_SAMPLES,
  unreadableChars,
  type BigPlanOptions,
  type GgufPlanOptions,
  type GgufTensorClass,
  type LoadProgress,
  type PlanView,
  type StudentLoadOptions,
  type StudentTokenizer,
  type TensorClass,
} from './big-student.ts';
export type { GgufFacts, GgufInspection } from './gguf-student.ts';
export type { MlcFacts, MlcInspection } from './mlc-student.ts';

export interface StudentSource {
  /** URL of a safetensors model (our format, `writeLlamaSafetensors`). */
  modelUrl?: string;
  /** Its bytes instead of a URL (a dropped file). */
  modelBytes?: ArrayBuffer;
  /** URL of the char-tokenizer JSON; by default `<model>.tokenizer.json` next to `modelUrl`. */
  tokenizerUrl?: string;
  tokenizerJson?: unknown;
  /** A GGUF LLaMA as a File / Blob: read in chunks (never whole); a Blob crosses comlink without a copy. */
  gguf?: Blob;
  /** A GGUF LLaMA by URL, read with HTTP Range requests. */
  ggufUrl?: string;
  /**
   * web-llm's MLC build of a LLaMA by its model URL (as web-llm's model list names it, e.g.
   * https://huggingface.co/mlc-ai/Llama-2-7b-chat-hf-q4f16_1-MLC), read from the browser's Cache
   * Storage (downloaded by web-llm or by Models' Download; never fetched here).
   */
  mlcUrl?: string;
  /** GGUF and MLC: what the load is planned for (the Solve limits that follow from it). */
  plan?: BigPlanOptions;
  /** The caller's name for this choice; `modelInfo.key` says which choice is loaded. */
  key?: string;
  name?: string;
}

/** Whether a source is a big student (GGUF or MLC: planned before it is loaded). */
export function isBigSource(src: Pick<StudentSource, 'gguf' | 'ggufUrl' | 'mlcUrl'>): boolean {
  return src.gguf !== undefined || src.ggufUrl !== undefined || src.mlcUrl !== undefined;
}

/**
 * Our safetensors model read on the CPU (nothing uploaded): the checkpoint and its character
 * tokenizer (`tokenizerJson`, else `tokenizerUrl`, else `<model>.tokenizer.json` next to
 * `modelUrl`), checked against each other. What `load` uploads, and what the Train view's planner
 * reads of our models.
 */
export async function readOurStudent(
  src: StudentSource,
): Promise<{ name: string; config: LlamaConfig; weights: LlamaWeightsF32; tokenizer: CharTokenizer }> {
  const name = src.name ?? src.modelUrl?.split('/').pop() ?? 'model';
  const bytes = src.modelBytes ?? (src.modelUrl ? await fetchBytes(src.modelUrl, 'student model') : null);
  if (!bytes) throw new EngineError('BAD_ARGUMENT', 'Give a model file or a URL to load.');
  const tokUrl =
    src.tokenizerUrl ??
    (src.modelUrl ? src.modelUrl.replace(/\.safetensors$/, '') + '.tokenizer.json' : null);
  let json = src.tokenizerJson;
  if (json === undefined) {
    if (!tokUrl)
      throw new EngineError('BAD_ARGUMENT', 'This model needs its tokenizer file (.tokenizer.json).');
    const text = new TextDecoder().decode(await fetchBytes(tokUrl, 'tokenizer'));
    try {
      json = JSON.parse(text);
    } catch {
      throw new EngineError(
        'BAD_FILE',
        `The tokenizer at ${tokUrl} is not JSON: a character tokenizer file is {"type": "char", "chars": "..."}.`,
      );
    }
  }
  const { config, weights } = readLlamaSafetensors(bytes, name);
  const tokenizer = CharTokenizer.fromJSON(json);
  checkTokenizerVocab(tokenizer.vocabSize, config.vocabSize, tokUrl ?? 'the tokenizer', name);
  return { name, config, weights, tokenizer };
}

export interface StudentModelInfo {
  name: string;
  config: LlamaConfig;
  params: number;
  /** 'gguf' for a llama.cpp file, 'mlc' for web-llm's build; absent or 'dust2gold' for our safetensors model. */
  format?: 'dust2gold' | 'gguf' | 'mlc';
  /** The source's `key`, when it had one. */
  key?: string;
  tokenizer?: { kind: 'char' | 'spm'; tokens: number };
  /** GGUF: the header's facts and the plan it was loaded under. */
  gguf?: GgufInspection;
  /** MLC: the model's facts and the plan it was loaded under. */
  mlc?: MlcInspection;
  /** At most this many samples of at most this many positions (a big model's plan); absent: no limit but the model's. */
  limits?: { sequences: number; context: number };
}

/** Options of a runtime. */
export interface RuntimeOptions {
  /** Where MLC models are read from: the browser's Cache Storage by default (tests give their own). */
  caches?: CacheStorageLike;
}

export class StudentRuntime {
  private _model: LlamaModel<Tensor> | null = null;
  private _tokenizer: StudentTokenizer | null = null;
  private _info: StudentModelInfo | null = null;
  /** The last big model opened (planning again with other settings reads nothing). */
  private opened: BigStudent<unknown> | null = null;

  private constructor(
    readonly gpu: Gpu,
    readonly be: GpuBackend,
    private readonly opts: RuntimeOptions,
  ) {}

  /**
   * Opens a device on `gpu` (navigator.gpu in a worker; Node's GPU in tests). `device` asks for
   * less than the adapter offers (tests rehearse a small GPU with it); `opts.caches` is where MLC
   * models are read from (the browser's Cache Storage by default).
   */
  static async open(
    gpu: GPU | undefined,
    device: DeviceRequest = {},
    opts: RuntimeOptions = {},
  ): Promise<StudentRuntime> {
    const g = await Gpu.create(gpu, { powerPreference: 'high-performance', ...device });
    return new StudentRuntime(g, new GpuBackend(g), opts);
  }

  get info(): GpuInfo {
    return this.gpu.info;
  }

  get model(): LlamaModel<Tensor> {
    if (!this._model) throw new EngineError('BAD_ARGUMENT', 'No student model is loaded yet.');
    this.gpu.assertReady();
    return this._model;
  }

  get tokenizer(): StudentTokenizer {
    if (!this._tokenizer) throw new EngineError('BAD_ARGUMENT', 'No student model is loaded yet.');
    return this._tokenizer;
  }

  get modelInfo(): StudentModelInfo | null {
    return this._info;
  }

  /**
   * The KV cache type Solve's runner uses for the loaded model: f16 for a big model (GGUF, MLC:
   * half the bytes, as llama.cpp keeps it; its memory plan counts that), f32 for our own small
   * models (llama2.c's exact arithmetic).
   */
  get kv(): KvType {
    const f = this._info?.format;
    return f === 'gguf' || f === 'mlc' ? BIG_KV : 'f32';
  }

  /**
   * The activation type Solve's runner uses: f16 for a big model on a device with shader-f16
   * (infer/runner.ts `act`; computed in f32, stored in f16), else f32 — always f32 for our small
   * models, whose greedy text is llama2.c's to the token.
   */
  get act(): ActType {
    const f = this._info?.format;
    return (f === 'gguf' || f === 'mlc') && this.gpu.info.f16 ? 'f16' : 'f32';
  }

  /** The plan options with the activation type a big model would run with on this device. */
  private planned(p: BigPlanOptions | undefined): BigPlanOptions {
    return { act: this.gpu.info.f16 ? 'f16' : 'f32', ...p };
  }

  /**
   * Loads a model; the old one stays loaded until the new one is read, checked and on the GPU (so
   * a failed load leaves the previous model in use). A GGUF or MLC source is planned first and
   * refused (LIMIT_EXCEEDED / OUT_OF_MEMORY with the planner's suggestions) before anything is
   * allocated.
   */
  async load(src: StudentSource, opts: StudentLoadOptions = {}): Promise<StudentModelInfo> {
    if (isBigSource(src)) return this.loadBig(src, opts);
    const { name, config, weights, tokenizer } = await readOurStudent(src);
    const model = await this.upload(config, weights, name);
    this.unload();
    this._model = model;
    this._tokenizer = tokenizer;
    this._info = {
      name,
      config,
      params: paramCount(config),
      format: 'dust2gold',
      ...(src.key !== undefined ? { key: src.key } : {}),
      tokenizer: { kind: 'char', tokens: tokenizer.vocabSize },
    };
    return this._info;
  }

  /**
   * A GGUF file's header facts and the planner's verdict for `src.plan` on this device, without
   * loading anything (the header is read once per source and kept for the next call).
   */
  async inspectGguf(src: StudentSource): Promise<GgufInspection> {
    const g = await openGgufStudent(src, this.opened, this.be.maxTensorBytes);
    this.opened = g;
    return { facts: g.facts(), plan: planBig(this.gpu.limits, g, this.planned(src.plan)).view };
  }

  /**
   * An MLC model's facts (from web-llm's cache: config, manifest, tokenizer) and the planner's
   * verdict for `src.plan` on this device, without loading anything. Refused when the model is not
   * in the cache, only partly there, not a LLaMA, or quantized otherwise than q4f16_1 / q4f32_1.
   */
  async inspectMlc(src: StudentSource): Promise<MlcInspection> {
    const m = await openMlcStudent(src, this.opened, this.opts.caches);
    this.opened = m;
    return { facts: m.facts(), plan: planBig(this.gpu.limits, m, this.planned(src.plan)).view };
  }

  private async openBig(src: StudentSource): Promise<BigStudent<unknown>> {
    const s =
      src.mlcUrl !== undefined
        ? await openMlcStudent(src, this.opened, this.opts.caches)
        : await openGgufStudent(src, this.opened, this.be.maxTensorBytes);
    this.opened = s;
    return s;
  }

  private async loadBig(src: StudentSource, opts: StudentLoadOptions): Promise<StudentModelInfo> {
    const s = await this.openBig(src);
    const { view, error } = planBig(this.gpu.limits, s, this.planned(src.plan));
    if (error) throw error; // before anything is allocated
    opts.signal?.throwIfAborted();
    const made: { model?: LlamaModel<Tensor> } = {};
    try {
      await this.gpu.checked(async () => {
        made.model = await s.load(this.be, opts);
      });
    } catch (e) {
      if (made.model) destroyLlama(made.model);
      if (!(e instanceof EngineError && e.code === 'OUT_OF_MEMORY')) throw e;
      throw new EngineError(
        'OUT_OF_MEMORY',
        `${s.what} (${formatBytes(view.items.weights)} of weights on the GPU) does not fit in the GPU memory that is free, although the plan said ${formatBytes(view.items.total)} fits a ${formatBytes(view.budget)} budget. ` +
          'Close other GPU-heavy tabs, give a smaller memory budget (Models) or load a smaller model.',
        { cause: e },
      );
    }
    this.unload();
    this._model = made.model!;
    this._tokenizer = s.tokenizer;
    const inspection = { facts: s.facts(), plan: view };
    this._info = {
      name: src.name ?? s.name,
      config: s.config,
      params: paramCount(s.config),
      format: s.format,
      ...(src.key !== undefined ? { key: src.key } : {}),
      tokenizer: { kind: 'spm', tokens: s.tokenizer.vocabSize },
      ...(s.format === 'gguf'
        ? { gguf: inspection as GgufInspection }
        : { mlc: inspection as MlcInspection }),
      limits: { sequences: view.sequences, context: view.context },
    };
    return this._info;
  }

  /**
   * The weights onto the GPU inside the device's out-of-memory scope (a browser reports a failed
   * allocation as a GPU error, not a throw); a model that does not fit leaves nothing behind.
   */
  private async upload(
    config: LlamaConfig,
    weights: Parameters<typeof loadLlama>[2],
    name: string,
  ): Promise<LlamaModel<Tensor>> {
    const made: { model?: LlamaModel<Tensor> } = {};
    try {
      await this.gpu.checked(() => {
        made.model = loadLlama(this.be, config, weights);
      });
    } catch (e) {
      if (made.model) destroyLlama(made.model);
      if (!(e instanceof EngineError && e.code === 'OUT_OF_MEMORY')) throw e;
      throw new EngineError(
        'OUT_OF_MEMORY',
        `${name} (${paramCount(config).toLocaleString('en')} parameters) does not fit in the GPU memory that is free. ` +
          'Close other GPU-heavy tabs and reload the page, or load a smaller model (Models).',
        { cause: e },
      );
    }
    return made.model!;
  }

  unload(): void {
    if (this._model) destroyLlama(this._model);
    this._model = null;
    this._tokenizer = null;
    this._info = null;
  }

  destroy(): void {
    this.unload();
    this.opened = null;
    this.gpu.destroy();
  }
}
