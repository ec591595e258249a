/**
 * What a worker holds for the method's student: one GPU device, its backend and the loaded model
 * with its tokenizer. The inference worker's Solve and Compare engines share one runtime (one
 * device, one copy of the weights); the trainer worker has its own. Plain data in, plain data out:
 * nothing here reaches the UI but names and numbers.
 *
 * Two kinds of student: our safetensors model with its character tokenizer (the built-in
 * arith-student), and a GGUF LLaMA (llama.cpp's file: a dropped File / Blob, read in chunks, or a
 * URL read with HTTP Range requests) with the SentencePiece tokenizer from its metadata. A GGUF
 * load is planned first (src/engine/plan.ts: weights as they will sit on the GPU, the KV cache for
 * `sequences` × `context`, activations, against the device's limits and the memory budget); a
 * refusal is a typed error carrying the planner's suggestion, thrown before anything is allocated.
 *
 * @example
 *   const rt = await StudentRuntime.open(navigator.gpu);
 *   await rt.load({ modelUrl: '/models/arith-student.safetensors' });
 *   rt.model.config.dim; // 64
 *   const seen = await rt.inspectGguf({ gguf: file, plan: { sequences: 16, context: 512 } });
 *   seen.plan.verdict; // 'ok' | 'refused'
 *   await rt.load({ gguf: file, plan: { sequences: 16, context: 512 } }, { onProgress, signal });
 */
import { fetchBytes } from '../../engine/api/inference.ts';
import { GpuBackend } from '../../engine/backend/gpu.ts';
import { EngineError, formatBytes } from '../../engine/errors.ts';
import type { DeviceRequest, GpuInfo } from '../../engine/gpu/device.ts';
import { Gpu } from '../../engine/gpu/gpu.ts';
import type { Tensor } from '../../engine/gpu/tensor.ts';
import { fromBlob, fromUrl, type ByteSource } from '../../engine/io/bytesource.ts';
import { CharTokenizer, checkTokenizerVocab } from '../../engine/io/chartok.ts';
import { readLlamaSafetensors } from '../../engine/io/checkpoint.ts';
import { readGgufHeader, type GgufFile } from '../../engine/io/gguf.ts';
import { llamaConfigFromGguf, metaString } from '../../engine/io/gguf-llama.ts';
import {
  ggufLoadPlan,
  ggufPlanWeightTypes,
  loadLlamaGguf,
  type GgufLoadOptions,
  type GgufLoadTensor,
  type LoadProgress,
} from '../../engine/io/load-gguf.ts';
import { spmTokenizerFromGguf, SpmTokenizer } from '../../engine/io/spm.ts';
import { kvBytesPerValue, type KvType } from '../../engine/kvcache.ts';
import { kvDim, paramCount, type LlamaConfig } from '../../engine/model/config.ts';
import { destroyLlama, loadLlama, type LlamaModel } from '../../engine/model/llama.ts';
import {
  formatPlan,
  planMemory,
  type InferenceRequest,
  type Plan,
  type PlanItems,
  type SplitTensor,
} from '../../engine/plan.ts';

export type { LoadProgress };

/** A planner split of the runner's KV cache (bound whole per layer; weights split by rows instead). */
const isKvCache = (s: { name: string }): boolean =>
  s.name.startsWith('kcache') || s.name.startsWith('vcache');

/** The KV cache type of a GGUF model (planned for, and what Solve's runner then uses). */
const GGUF_KV: KvType = 'f16';

/** Samples per question at most (Solve's m, and what a GGUF model is planned for by default). */
export const MAX_SAMPLES = 32;
/** Positions per sample a GGUF model is planned for by default: prompt + answer (Solve's default answer is 120 tokens). */
export const DEFAULT_CONTEXT = 512;

/** A tokenizer the method can use: generate()'s TextTokenizer plus `decode`. */
export type StudentTokenizer = CharTokenizer | SpmTokenizer;

/** What a GGUF model must serve, for the memory planner. */
export interface GgufPlanOptions {
  /** m: samples decoded at once (KV-cache slots). Default MAX_SAMPLES. */
  sequences?: number;
  /** Positions per sample, prompt included. Default min(DEFAULT_CONTEXT, the model's context). */
  context?: number;
  /** The GPU memory the user says can be used, in bytes; absent: the planner assumes 4 GiB. */
  memoryBudget?: number;
}

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
  /** GGUF only: what the load is planned for (the Solve limits that follow from it). */
  plan?: GgufPlanOptions;
  /** The caller's name for this choice; `modelInfo.key` says which choice is loaded. */
  key?: string;
  name?: string;
}

/** How a load reports progress and is cancelled (GGUF: per chunk read). */
export interface StudentLoadOptions {
  onProgress?: (p: LoadProgress) => void;
  /** An aborted load frees what it allocated and throws `signal.reason`. */
  signal?: AbortSignal;
}

/** One class of tensors of a GGUF file ('attn_q' for every blk.N.attn_q.weight, 'token_embd', …). */
export interface GgufTensorClass {
  name: string;
  count: number;
  /** File type → tensors of this class stored in it (a Q4_K_M file mixes Q4_K and Q6_K). */
  file: Record<string, number>;
  /** What they become on the GPU: 'q4_0 (blocks as stored)', 'q8_0 (requantized)', 'f32'. */
  gpu: string[];
  /** Bytes on the GPU, all tensors of the class. */
  gpuBytes: number;
}

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
  classes: GgufTensorClass[];
  tokenizer: { model: string; tokens: number; byteFallback: boolean; bos: number; eos: number };
}

/** The planner's verdict as plain data (an EngineError does not survive structured clone). */
export interface PlanView {
  sequences: number;
  context: number;
  /** KV cache element type planned for (the Solve runner's). */
  kv: KvType;
  items: PlanItems;
  budget: number;
  budgetAssumed: boolean;
  /** The largest buffer one kernel binds (min of maxBufferSize and maxStorageBufferBindingSize). */
  bindingLimit: number;
  splits: SplitTensor[];
  verdict: 'ok' | 'refused';
  error: { code: string; message: string } | null;
  suggestions: { kind: string; text: string; total: number; sequences?: number; context?: number }[];
  /** formatPlan's table (for the CLI-minded and for logs). */
  text: string;
}

export interface GgufInspection {
  facts: GgufFacts;
  plan: PlanView;
}

export interface StudentModelInfo {
  name: string;
  config: LlamaConfig;
  params: number;
  /** 'gguf' for a llama.cpp file; absent or 'dust2gold' for our safetensors model. */
  format?: 'dust2gold' | 'gguf';
  /** The source's `key`, when it had one. */
  key?: string;
  tokenizer?: { kind: 'char' | 'spm'; tokens: number };
  /** GGUF: the header's facts and the plan it was loaded under. */
  gguf?: GgufInspection;
  /** At most this many samples of at most this many positions (a GGUF load's plan); absent: no limit but the model's. */
  limits?: { sequences: number; context: number };
}

/**
 * The characters of `text` a tokenizer cannot read: for the character tokenizer, those outside its
 * alphabet; for SentencePiece, those that become the unknown token (none with byte fallback, as in
 * LLaMA's vocabulary) or that it cannot encode at all.
 */
export function unreadableChars(tok: StudentTokenizer, text: string): string[] {
  const chars = [...new Set(text)];
  if (tok instanceof CharTokenizer) return chars.filter((c) => !tok.chars.includes(c));
  const unknown = (s: string): boolean => {
    try {
      return tok.unk !== null && tok.encode(s, false, false).includes(tok.unk);
    } catch {
      return true;
    }
  };
  return unknown(text) ? chars.filter(unknown) : [];
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
  const classes = new Map<string, GgufTensorClass>();
  for (const t of load) {
    const name = tensorClass(t.info.name);
    const c = classes.get(name) ?? { name, count: 0, file: {}, gpu: [], gpuBytes: 0 };
    c.count++;
    c.file[t.info.typeName] = (c.file[t.info.typeName] ?? 0) + 1;
    const how =
      t.how === 'blocks'
        ? `${t.dtype} (blocks as stored)`
        : t.how === 'requantize'
          ? `${t.dtype} (requantized)`
          : t.dtype;
    if (!c.gpu.includes(how)) c.gpu.push(how);
    c.gpuBytes += t.bytes;
    classes.set(name, c);
  }
  // every ASCII character and characters of each UTF-8 length read without the unknown token
  let probe = '\u00e9\u4e2d\u{1F642}\uE000';
  for (let c = 0; c < 128; c++) probe += String.fromCharCode(c);
  const byteFallback = unreadableChars(tok, probe).length === 0;
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
    classes: [...classes.values()],
    tokenizer: {
      model: metaString(file, 'tokenizer.ggml.model') ?? '',
      tokens: tok.vocabSize,
      byteFallback,
      bos: tok.bos,
      eos: tok.eos,
    },
  };
}

/** A GGUF file opened for planning and loading: its header, source, config and load plan. */
interface OpenedGguf {
  key: string;
  src: ByteSource;
  file: GgufFile;
  config: LlamaConfig;
  tokenizer: SpmTokenizer;
  loadOpts: GgufLoadOptions;
  load: GgufLoadTensor[];
}

export class StudentRuntime {
  private _model: LlamaModel<Tensor> | null = null;
  private _tokenizer: StudentTokenizer | null = null;
  private _info: StudentModelInfo | null = null;
  /** The last GGUF header read (planning again with other settings reads nothing). */
  private opened: OpenedGguf | null = null;

  private constructor(
    readonly gpu: Gpu,
    readonly be: GpuBackend,
  ) {}

  /**
   * Opens a device on `gpu` (navigator.gpu in a worker; Node's GPU in tests). `device` asks for
   * less than the adapter offers (tests rehearse a small GPU with it).
   */
  static async open(gpu: GPU | undefined, device: DeviceRequest = {}): Promise<StudentRuntime> {
    const g = await Gpu.create(gpu, { powerPreference: 'high-performance', ...device });
    return new StudentRuntime(g, new GpuBackend(g));
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
   * The KV cache type Solve's runner uses for the loaded model: f16 for a GGUF model (half the
   * bytes, as llama.cpp keeps it; its memory plan counts that), f32 for our own small models
   * (llama2.c's exact arithmetic).
   */
  get kv(): KvType {
    return this._info?.format === 'gguf' ? 'f16' : 'f32';
  }

  /**
   * Loads a model; the old one stays loaded until the new one is read, checked and on the GPU (so
   * a failed load leaves the previous model in use). A GGUF source is planned first and refused
   * (LIMIT_EXCEEDED / OUT_OF_MEMORY with the planner's suggestions) before anything is allocated.
   */
  async load(src: StudentSource, opts: StudentLoadOptions = {}): Promise<StudentModelInfo> {
    if (src.gguf || src.ggufUrl) return this.loadGguf(src, opts);
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
    const g = await this.openGguf(src);
    return {
      facts: ggufFacts(g.file, g.config, g.load, g.tokenizer),
      plan: this.planView(g, src.plan ?? {}).view,
    };
  }

  private async openGguf(src: StudentSource): Promise<OpenedGguf> {
    const blob = src.gguf;
    const url = src.ggufUrl;
    const fromPath = url ? decodeURIComponent(url.split(/[?#]/)[0]?.split('/').pop() ?? '') : '';
    const fileName = (blob as File | undefined)?.name || fromPath || src.name || 'model.gguf';
    const key = src.key ?? (blob ? `file:${fileName}:${blob.size}` : `url:${url ?? ''}`);
    const o = this.opened;
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
    const max = this.be.maxTensorBytes;
    // F16 / F32 matrices too big for one binding are quantized while loading (q8_0, else q4_0)
    let loadOpts: GgufLoadOptions = {};
    let load = ggufLoadPlan(file, loadOpts, max, config);
    for (const f of ['q8_0', 'q4_0'] as const) {
      if (!load.some((t) => t.bytes > max && t.dtype === 'f32' && t.shape.length === 2)) break;
      loadOpts = { floatMatrices: f };
      load = ggufLoadPlan(file, loadOpts, max, config);
    }
    const opened: OpenedGguf = { key, src: bytes, file, config, tokenizer, loadOpts, load };
    this.opened = opened;
    return opened;
  }

  /** The planner's request for a GGUF load on this device. */
  private planRequest(g: OpenedGguf, p: GgufPlanOptions): InferenceRequest {
    const l = this.gpu.limits;
    const sequences = p.sequences ?? MAX_SAMPLES;
    const context = p.context ?? Math.min(DEFAULT_CONTEXT, g.config.maxSeqLen);
    const intIn = (v: number, lo: number, hi: number, what: string) => {
      if (!(Number.isInteger(v) && v >= lo && v <= hi))
        throw new EngineError('BAD_ARGUMENT', `${what} is ${v}: choose a whole number from ${lo} to ${hi}.`);
    };
    intIn(sequences, 1, MAX_SAMPLES, 'The number of samples');
    intIn(
      context,
      2,
      g.config.maxSeqLen,
      `The context (positions per sample; this model reads at most ${g.config.maxSeqLen})`,
    );
    if (p.memoryBudget !== undefined && !(p.memoryBudget > 0))
      throw new EngineError(
        'BAD_ARGUMENT',
        `A memory budget of ${p.memoryBudget} bytes: give a positive figure, or none.`,
      );
    return {
      kind: 'inference',
      config: g.config,
      weights: ggufPlanWeightTypes(g.load),
      limits: {
        maxBufferSize: l.maxBufferSize ?? Infinity,
        maxStorageBufferBindingSize: l.maxStorageBufferBindingSize ?? Infinity,
        ...(p.memoryBudget !== undefined ? { memoryBudget: p.memoryBudget } : {}),
      },
      sequences,
      context,
      act: 'f32',
      kv: GGUF_KV,
      maxRows: Math.max(64, sequences),
    };
  }

  /**
   * The plan and, when refused, its error. A weight over the binding limit is split by rows across
   * buffers (backend/gpu.ts), but the runner binds each layer's KV cache whole: beyond the planner's
   * own verdict, a plan that would split the KV cache is refused (the suggestion says how many
   * samples or positions fit).
   */
  private planView(g: OpenedGguf, p: GgufPlanOptions): { view: PlanView; error: EngineError | null } {
    const req = this.planRequest(g, p);
    const plan = planMemory(req);
    let error = plan.error;
    const suggestions: PlanView['suggestions'] = plan.suggestions.map((s) => ({
      kind: s.kind,
      text: s.text,
      total: s.total,
      ...(s.kind === 'sequences' ? { sequences: s.sequences } : {}),
      ...(s.kind === 'context' ? { context: s.context } : {}),
    }));
    const kvSplits = plan.splits.filter(isKvCache);
    if (!error && kvSplits.length > 0) {
      const refusal = this.splitRefusal(req, { ...plan, splits: kvSplits });
      error = refusal.error;
      suggestions.push(...refusal.suggestions);
    }
    const view: PlanView = {
      sequences: req.sequences,
      context: req.context,
      kv: GGUF_KV,
      items: plan.items,
      budget: plan.budget,
      budgetAssumed: plan.budgetAssumed,
      bindingLimit: plan.bindingLimit,
      splits: plan.splits,
      verdict: error ? 'refused' : 'ok',
      error: error ? { code: error.code, message: error.message } : null,
      suggestions,
      text: formatPlan(plan),
    };
    return { view, error };
  }

  private splitRefusal(
    req: InferenceRequest,
    plan: Plan,
  ): { error: EngineError; suggestions: PlanView['suggestions'] } {
    const limit = plan.bindingLimit;
    const perPos = kvDim(req.config) * kvBytesPerValue(GGUF_KV); // k (or v) values of one position of one sequence
    const suggestions: PlanView['suggestions'] = [];
    const fitsWhole = (r: InferenceRequest) => {
      const q = planMemory(r);
      return q.error === null && !q.splits.some(isKvCache) ? q : null;
    };
    const kv = plan.splits.find(isKvCache);
    const what = plan.splits
      .map((s) => `${s.count > 1 ? `${s.count} × ` : ''}${s.name} (${formatBytes(s.bytes)})`)
      .join(', ');
    if (kv) {
      const m = Math.min(req.sequences - 1, Math.floor(limit / (req.context * perPos)));
      const fm = m >= 1 ? fitsWhole({ ...req, sequences: m, maxRows: Math.max(64, m) }) : null;
      if (fm)
        suggestions.push({
          kind: 'sequences',
          sequences: m,
          total: fm.items.total,
          text: `at most ${m} samples at ${req.context.toLocaleString('en-US')} positions (${formatBytes(fm.items.total)})`,
        });
      const t = Math.min(req.context - 1, Math.floor(limit / (req.sequences * perPos)));
      const ft = t >= 2 ? fitsWhole({ ...req, context: t }) : null;
      if (ft)
        suggestions.push({
          kind: 'context',
          context: t,
          total: ft.items.total,
          text: `${req.sequences} samples at most ${t.toLocaleString('en-US')} positions long (${formatBytes(ft.items.total)})`,
        });
    }
    const fix = suggestions.length
      ? ` To fit: ${suggestions.map((s) => s.text).join('; or ')}.`
      : ' Pick a smaller model or a more quantized file (Q4_0, Q4_K_M).';
    return {
      error: new EngineError(
        'LIMIT_EXCEEDED',
        `This GPU binds at most ${formatBytes(limit)} per buffer, and ${what} would have to be split across buffers, which dust2gold does not do for the KV cache yet.${fix}`,
      ),
      suggestions,
    };
  }

  private async loadGguf(src: StudentSource, opts: StudentLoadOptions): Promise<StudentModelInfo> {
    const g = await this.openGguf(src);
    const { view, error } = this.planView(g, src.plan ?? {});
    if (error) throw error; // before anything is allocated
    opts.signal?.throwIfAborted();
    const name = src.name ?? g.file.name.replace(/\.gguf$/i, '');
    const made: { model?: LlamaModel<Tensor> } = {};
    const loadOpts: GgufLoadOptions = {
      ...g.loadOpts,
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    };
    try {
      await this.gpu.checked(async () => {
        made.model = await loadLlamaGguf(this.be, g.file, g.src, loadOpts);
      });
    } catch (e) {
      if (made.model) destroyLlama(made.model);
      if (!(e instanceof EngineError && e.code === 'OUT_OF_MEMORY')) throw e;
      throw new EngineError(
        'OUT_OF_MEMORY',
        `${g.file.name} (${formatBytes(view.items.weights)} of weights on the GPU) does not fit in the GPU memory that is free, although the plan said ${formatBytes(view.items.total)} fits a ${formatBytes(view.budget)} budget. ` +
          'Close other GPU-heavy tabs, give a smaller memory budget (Models) or load a smaller model.',
        { cause: e },
      );
    }
    this.unload();
    this._model = made.model!;
    this._tokenizer = g.tokenizer;
    this._info = {
      name,
      config: g.config,
      params: paramCount(g.config),
      format: 'gguf',
      ...(src.key !== undefined ? { key: src.key } : {}),
      tokenizer: { kind: 'spm', tokens: g.tokenizer.vocabSize },
      gguf: { facts: ggufFacts(g.file, g.config, g.load, g.tokenizer), plan: view },
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
