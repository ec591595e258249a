/**
 * The Models view's state: the built-in student's card, the base model in use (and loading
 * another: our safetensors model, or a big LLaMA — a GGUF file, or web-llm's MLC build downloaded
 * into the browser's Cache Storage — planned, then loaded into the inference worker with a progress
 * bar: `BigModelState`, one for each card), the adapter sets (rename, delete, export as PEFT, import from PEFT) and the
 * browser's storage. One object for the page (`models`), because App renders `<ModelsView />` without props
 * and the state should outlive a visit to another view.
 *
 * Model files are checked before they are chosen (src/app/lib/model-files.ts); the card's
 * markdown is parsed by src/app/lib/card-markdown.ts.
 */
import { readLoraSafetensors } from '../../engine/io/checkpoint.ts';
import { EngineError, formatBytes } from '../../engine/errors.ts';
import type { LlamaConfig } from '../../engine/model/config.ts';
import {
  exportAdapterSet,
  importAdapterFiles,
  isZip,
  unzipFiles,
  zipFiles,
} from '../../method/adapter-zip.ts';
import type {
  BigPlanOptions,
  GgufInspection,
  LoadProgress,
  MlcInspection,
  PlanView,
  StudentModelInfo,
  StudentSource,
} from '../../method/api/runtime.ts';
import { Comlink, inference, publicUrl } from '../engine-client.ts';
import {
  adapterFiles,
  deleteAdapterSet,
  listAdapterSets,
  renameAdapterSet,
  saveAdapterSet,
  type AdapterSetMeta,
} from '../lib/adapters-store.ts';
import { AppError, describeError, type UserMessage } from '../lib/errors.ts';
import { checkModelFiles } from '../lib/model-files.ts';
import {
  downloadMlcModel,
  mlcCacheStatus,
  mlcModelId,
  WEBLLM_LLAMA_MODELS,
  type MlcCacheStatus,
  type MlcDownloadProgress,
} from '../lib/mlc-download.ts';
import { parseCard, type CardBlock } from '../lib/card-markdown.ts';
import { studentModel, type ModelChoice } from './student-model.svelte.ts';

/* ------------------------------------------------------------------ pure parts */

/** A name safe for a download: "KD — CoT distillation" → "kd-cot-distillation". */
export function slug(s: string): string {
  return (
    s
      .toLowerCase()
      .normalize('NFKD')
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 60) || 'adapter'
  );
}

/** Stages whose set is one LoRA (lora.safetensors): what a single imported PEFT LoRA can be. */
export const SINGLE_LORA_STAGES = ['kd', 'neg', 'mix', 'nce', 'nt', 'ul', 'cl'] as const;

/* ------------------------------------------------------------------ the state */

export interface BaseInfo {
  name: string;
  label: string;
  builtin: boolean;
  config: LlamaConfig;
  params: number;
  /** A GGUF model: its header's facts and the plan it was loaded under. */
  gguf?: GgufInspection;
  /** An MLC (web-llm) model: its facts and the plan it was loaded under. */
  mlc?: MlcInspection;
}

/** Solve's maximum m (method/api/runtime.ts MAX_SAMPLES; not imported: it would bring the engine into the page). */
export const GGUF_MAX_SAMPLES = 32;
const BUDGET_KEY = 'd2g.gpuBudgetGiB';

/** The GPU memory budget the user gave last time, in GiB ('' = none: the planner assumes 4 GiB). */
function savedBudget(): string {
  try {
    return localStorage.getItem(BUDGET_KEY) ?? '';
  } catch {
    return '';
  }
}

/**
 * What a big model's card picked — a .gguf file or URL, or an MLC model URL — with the model's
 * name and the key that names the choice across workers.
 */
export interface BigPick {
  label: string;
  name: string;
  key: string;
  file?: File;
  url?: string;
  mlcUrl?: string;
}
/** The GGUF card's pick (the name it had first). */
export type GgufPick = BigPick;

let picks = 0;

/** A big model (GGUF or MLC): planned and loaded by the Models view itself. */
function isBig(c: ModelChoice): boolean {
  return c.gguf !== undefined || c.ggufUrl !== undefined || c.mlcUrl !== undefined;
}

function baseOfBig(c: ModelChoice, info: StudentModelInfo): BaseInfo {
  return {
    name: info.name,
    label: c.label,
    builtin: false,
    config: info.config,
    params: info.params,
    ...(info.gguf ? { gguf: info.gguf } : {}),
    ...(info.mlc ? { mlc: info.mlc } : {}),
  };
}

/** A pick as the worker's source (the file, the GGUF URL or the MLC URL). */
function sourceOf(pick: BigPick): Pick<StudentSource, 'gguf' | 'ggufUrl' | 'mlcUrl'> {
  if (pick.file) return { gguf: pick.file };
  if (pick.url !== undefined) return { ggufUrl: pick.url };
  return { mlcUrl: pick.mlcUrl! };
}

/** The GPU memory budget as typed (GiB) → bytes for the planner; '' or nonsense = none. */
function budgetBytes(typed: string): number | undefined {
  const gib = Number(typed.trim().replace(',', '.'));
  return typed.trim() !== '' && gib > 0 ? Math.round(gib * 2 ** 30) : undefined;
}

/** What a big model's card needs from the page: the budget, how to inspect, and what to do once loaded. */
interface BigHost<I> {
  budget(): string;
  inspect(src: StudentSource): Promise<I>;
  loaded(choice: ModelChoice, info: StudentModelInfo): void;
  /** Another big model is loading (the worker loads one at a time). */
  otherLoading(): boolean;
}

/**
 * One big model's card (GGUF or MLC): the pick, its facts and the planner's verdict for the
 * samples, context and budget set, then the load into the inference worker with progress and
 * Cancel; once loaded it is the model in use (Solve finds it in the worker).
 */
export class BigModelState<I extends GgufInspection | MlcInspection> {
  pick = $state.raw<BigPick | null>(null);
  /** The facts and the planner's verdict for the settings below. */
  seen = $state.raw<I | null>(null);
  samples = $state(GGUF_MAX_SAMPLES);
  context = $state(512);
  phase = $state<'idle' | 'reading' | 'loading'>('idle');
  progress = $state.raw<LoadProgress | null>(null);
  error = $state.raw<UserMessage | null>(null);
  notice = $state('');
  /** The pick is the model in use (loading it again takes the settings as they are now). */
  inUse = $derived(this.pick !== null && studentModel.source.key === this.pick.key);
  private inspections = 0;

  constructor(private readonly host: BigHost<I>) {}

  planOptions(): BigPlanOptions {
    const budget = budgetBytes(this.host.budget());
    return {
      sequences: Math.round(Number(this.samples)),
      context: Math.round(Number(this.context)),
      ...(budget !== undefined ? { memoryBudget: budget } : {}),
    };
  }

  private source(pick: BigPick, plan?: BigPlanOptions): StudentSource {
    return { ...sourceOf(pick), name: pick.name, key: pick.key, ...(plan ? { plan } : {}) };
  }

  /** Shows an error of the card (a bad pick) without reading anything. */
  fail(e: unknown): void {
    this.error = describeError(e);
  }

  /** Reads a new pick (`fresh`: planned for the defaults first, m = 32 and its context up to 512) or plans again. */
  async inspect(pick: BigPick, fresh: boolean): Promise<void> {
    const id = ++this.inspections;
    const latest = () => id === this.inspections && this.pick === pick;
    this.error = null;
    this.notice = '';
    if (fresh) {
      this.pick = pick;
      this.seen = null;
    }
    this.phase = 'reading';
    try {
      const seen = await this.host.inspect(
        this.source(pick, fresh ? { sequences: this.samples } : this.planOptions()),
      );
      if (!latest()) return;
      this.seen = seen;
      this.samples = seen.plan.sequences;
      this.context = seen.plan.context;
    } catch (e) {
      if (latest()) {
        this.error = describeError(e);
        this.seen = null;
      }
    } finally {
      if (latest()) this.phase = 'idle';
    }
  }

  /** Plans again with the settings as they are now (samples, context, budget); the latest call wins. */
  async replan(): Promise<void> {
    if (this.pick && this.phase !== 'loading') await this.inspect(this.pick, false);
  }

  /** Takes one of the planner's suggestions (fewer samples, a shorter context) and plans again. */
  async applySuggestion(s: PlanView['suggestions'][number]): Promise<void> {
    if (s.sequences !== undefined) this.samples = s.sequences;
    if (s.context !== undefined) this.context = s.context;
    await this.replan();
  }

  /**
   * Loads the planned model into the inference worker (progress per read; cancel aborts), then
   * makes it the model in use: Solve finds it loaded. A failed or cancelled load leaves the model
   * in use as it was.
   */
  async load(): Promise<void> {
    const pick = this.pick;
    if (!pick || !this.seen || this.phase !== 'idle' || this.host.otherLoading()) return;
    this.error = null;
    this.notice = '';
    this.phase = 'loading';
    this.progress = { bytesDone: 0, bytesTotal: this.seen.facts.dataBytes, tensor: '' };
    const plan = this.planOptions();
    try {
      const info = await inference().solver.load(
        this.source(pick, plan),
        Comlink.proxy((p: LoadProgress) => {
          if (this.pick === pick) this.progress = p;
        }),
      );
      this.host.loaded(
        { label: pick.label, name: info.name, ...sourceOf(pick), plan, key: pick.key, builtin: false },
        info,
      );
      this.notice = `${pick.label} is the model in use now (${info.params.toLocaleString('en-US')} parameters, up to ${info.limits?.sequences ?? '?'} samples of ${info.limits?.context ?? '?'} positions): Solve uses it.`;
    } catch (e) {
      if ((e as Error | null)?.name === 'AbortError')
        this.notice = `Cancelled: nothing of ${pick.label} stays on the GPU; the model in use is still ${studentModel.source.label}.`;
      else this.error = describeError(e);
    } finally {
      this.phase = 'idle';
      this.progress = null;
    }
  }

  cancel(): void {
    void inference().solver.cancelLoad();
  }
}

/** The MLC card's download: into web-llm's cache, with progress, Cancel and resume. */
export class MlcDownloadState {
  /** Which model the figures below are about (its URL as typed). */
  url = $state('');
  phase = $state<'idle' | 'checking' | 'downloading'>('idle');
  /** The download's progress: live while it runs, then where it ended. */
  progress = $state.raw<MlcDownloadProgress | null>(null);
  status = $state.raw<MlcCacheStatus | null>(null);
  error = $state.raw<UserMessage | null>(null);
  notice = $state('');
  private abort: AbortController | null = null;
  private checks = 0;

  /** What the browser's cache holds of the model at `url` already (web-llm's download counts). */
  async check(url: string): Promise<void> {
    const id = ++this.checks;
    if (url !== this.url) {
      // another model: what was said about the last one goes
      this.progress = null;
      this.error = null;
      this.notice = '';
    }
    this.url = url;
    this.status = null;
    if (this.phase === 'idle') this.phase = 'checking';
    try {
      const st = await mlcCacheStatus(url);
      if (id === this.checks) this.status = st;
    } catch (e) {
      if (id === this.checks) this.error = describeError(e);
    } finally {
      if (id === this.checks && this.phase === 'checking') this.phase = 'idle';
    }
  }

  /** Fetches what the cache lacks (files kept already are skipped), the quota checked first. */
  async download(url: string): Promise<void> {
    if (this.phase === 'downloading') return;
    this.url = url;
    this.error = null;
    this.notice = '';
    this.phase = 'downloading';
    this.progress = { bytesDone: 0, bytesTotal: 0, file: null };
    const abort = new AbortController();
    this.abort = abort;
    try {
      const r = await downloadMlcModel(url, {
        signal: abort.signal,
        onProgress: (p) => {
          if (this.abort === abort) this.progress = p;
        },
      });
      const kept = r.files - r.fetched;
      this.notice =
        r.fetched === 0
          ? `All ${r.files} files (${formatBytes(r.bytesTotal)}) were in this browser's cache already: nothing was downloaded.`
          : `Downloaded ${r.fetched} files (${formatBytes(r.bytesFetched)})${kept ? `; ${kept} were in the cache already` : ''}: all ${r.files} files (${formatBytes(r.bytesTotal)}) are in this browser's cache, where web-llm finds them too.`;
    } catch (e) {
      if ((e as Error | null)?.name === 'AbortError')
        this.notice =
          'Download cancelled: the files that arrived whole are kept; Download goes on from the next one.';
      else this.error = describeError(e);
    } finally {
      // the bar stays where the download ended (100% when it finished) until the next one
      if (this.abort === abort) this.abort = null;
      this.phase = 'idle';
    }
    await this.check(url);
  }

  cancel(): void {
    this.abort?.abort(new DOMException('The download was cancelled.', 'AbortError'));
  }
}

async function fetchOk(url: string, what: string): Promise<Response> {
  let r: Response;
  try {
    r = await fetch(url);
  } catch (cause) {
    throw new AppError(
      'DOWNLOAD',
      `The ${what} at ${url} could not be downloaded (${String(cause)}). Check the address; a server must allow this site to read it (CORS).`,
      { cause },
    );
  }
  if (!r.ok)
    throw new AppError('DOWNLOAD', `The ${what} at ${url} answered HTTP ${r.status}. Check the address.`);
  return r;
}

async function readBase(c: ModelChoice): Promise<BaseInfo> {
  const model =
    c.modelBytes ?? (c.modelUrl ? await (await fetchOk(c.modelUrl, 'model')).arrayBuffer() : null);
  if (!model) throw new EngineError('BAD_ARGUMENT', 'The model in use has neither a file nor a URL.');
  const tok =
    c.tokenizerJson !== undefined
      ? JSON.stringify(c.tokenizerJson)
      : await (
          await fetchOk(
            c.tokenizerUrl ?? (c.modelUrl ?? '').replace(/\.safetensors$/, '.tokenizer.json'),
            'tokenizer',
          )
        ).text();
  const m = checkModelFiles(model, tok, { model: c.label, tokenizer: `${c.name}.tokenizer.json` });
  return { name: c.name, label: c.label, builtin: c.builtin, config: m.config, params: m.params };
}

export class ModelsState {
  card = $state.raw<CardBlock[] | null>(null);
  cardError = $state.raw<UserMessage | null>(null);

  base = $state.raw<BaseInfo | null>(null);
  baseError = $state.raw<UserMessage | null>(null);
  private baseOf: ModelChoice | null = null;
  /** Loading another model: the check's result. */
  modelBusy = $state(false);
  modelError = $state.raw<UserMessage | null>(null);
  modelNotice = $state('');
  modelUrl = $state('');

  sets = $state.raw<AdapterSetMeta[]>([]);
  listError = $state.raw<UserMessage | null>(null);
  /** id of the set being exported / renamed / deleted (one at a time). */
  busy = $state<string | null>(null);
  rowError = $state.raw<{ id: string; error: UserMessage } | null>(null);

  importStage = $state<'auto' | (typeof SINGLE_LORA_STAGES)[number]>('auto');
  importName = $state('');
  importing = $state(false);
  importError = $state.raw<UserMessage | null>(null);
  importNotice = $state('');

  storage = $state.raw<{ usage: number; quota: number } | null>(null);
  persisted = $state<boolean | null>(null);
  storageError = $state.raw<UserMessage | null>(null);

  async loadCard(): Promise<void> {
    if (this.card) return;
    try {
      const r = await fetchOk(publicUrl('models/arith-student.md'), 'model card');
      this.card = parseCard(await r.text());
      this.cardError = null;
    } catch (e) {
      this.cardError = describeError(e);
    }
  }

  /** Reads the model in use (studentModel.source), once per choice. */
  async loadBase(): Promise<void> {
    const c = studentModel.source;
    if (this.baseOf === c) return;
    this.baseOf = c;
    this.base = null;
    this.baseError = null;
    try {
      const info = isBig(c) ? await this.readBigBase(c) : await readBase(c);
      if (this.baseOf !== c) return;
      this.base = info;
      if (!studentModel.info && studentModel.source === c)
        studentModel.info = { name: info.name, config: info.config, params: info.params };
    } catch (e) {
      if (this.baseOf === c) this.baseError = describeError(e);
    }
  }

  /** A GGUF or MLC choice: what the inference worker loaded (Models loads it there), else its header. */
  private async readBigBase(c: ModelChoice): Promise<BaseInfo> {
    const mine = studentModel.info;
    if (mine && mine.key === c.key) return baseOfBig(c, mine);
    const solver = inference().solver;
    await solver.init();
    const held = await solver.modelInfo();
    if (held && held.key === c.key) return baseOfBig(c, held);
    const { label: _l, builtin: _b, ...src } = c;
    const base = { name: c.name, label: c.label, builtin: false };
    if (c.mlcUrl !== undefined) {
      const seen = await solver.inspectMlc(src);
      return { ...base, config: seen.facts.config, params: seen.facts.params, mlc: seen };
    }
    const seen = await solver.inspect(src);
    return { ...base, config: seen.facts.config, params: seen.facts.params, gguf: seen };
  }

  private async baseConfig(): Promise<BaseInfo> {
    await this.loadBase();
    if (!this.base)
      throw new EngineError(
        'BAD_ARGUMENT',
        'The model in use could not be read, so adapters cannot be checked against it. Go back to the built-in model.',
      );
    return this.base;
  }

  /** A model file and its tokenizer, picked or dropped together; checked, then chosen. */
  async chooseModelFiles(files: readonly File[]): Promise<void> {
    this.modelError = null;
    this.modelNotice = '';
    const model = files.find((f) => f.name.endsWith('.safetensors'));
    const tok = files.find((f) => f.name.endsWith('.json'));
    if (!model || !tok || files.length !== 2) {
      this.modelError = describeError(
        new EngineError(
          'BAD_ARGUMENT',
          `A model needs two files, picked or dropped together: the model (.safetensors) and its tokenizer (.tokenizer.json). Got ${files.map((f) => f.name).join(', ') || 'nothing'}.`,
        ),
      );
      return;
    }
    this.modelBusy = true;
    try {
      const bytes = await model.arrayBuffer();
      const text = await tok.text();
      const m = checkModelFiles(bytes, text, { model: model.name, tokenizer: tok.name });
      const name = model.name.replace(/\.safetensors$/, '');
      studentModel.choose({
        label: model.name,
        name,
        modelBytes: bytes,
        tokenizerJson: JSON.parse(text) as unknown,
        builtin: false,
      });
      this.modelNotice = `${model.name} is the model in use now (${m.params.toLocaleString('en-US')} parameters).`;
      await this.loadBase();
    } catch (e) {
      this.modelError = describeError(e);
    } finally {
      this.modelBusy = false;
    }
  }

  /** A model by URL; its tokenizer is `<name>.tokenizer.json` next to it. */
  async chooseModelUrl(): Promise<void> {
    const url = this.modelUrl.trim();
    this.modelError = null;
    this.modelNotice = '';
    if (!/\.safetensors(\?.*)?$/.test(url)) {
      this.modelError = describeError(
        new EngineError(
          'BAD_ARGUMENT',
          'Give the URL of a .safetensors model; its tokenizer must sit next to it as <name>.tokenizer.json.',
        ),
      );
      return;
    }
    this.modelBusy = true;
    try {
      const tokUrl = url.replace(/\.safetensors(\?.*)?$/, '.tokenizer.json');
      const file = decodeURIComponent(url.split('?')[0]!.split('/').pop()!);
      const [bytes, text] = await Promise.all([
        fetchOk(url, 'model').then((r) => r.arrayBuffer()),
        fetchOk(tokUrl, 'tokenizer').then((r) => r.text()),
      ]);
      const m = checkModelFiles(bytes, text, {
        model: file,
        tokenizer: file.replace(/\.safetensors$/, '.tokenizer.json'),
      });
      studentModel.choose({
        label: file,
        name: file.replace(/\.safetensors$/, ''),
        modelUrl: url,
        tokenizerUrl: tokUrl,
        builtin: false,
      });
      this.modelNotice = `${file} is the model in use now (${m.params.toLocaleString('en-US')} parameters).`;
      await this.loadBase();
    } catch (e) {
      this.modelError = describeError(e);
    } finally {
      this.modelBusy = false;
    }
  }

  resetModel(): void {
    this.modelError = null;
    this.modelNotice = '';
    const wasBig = isBig(studentModel.source);
    studentModel.reset();
    // a 7B leaves the GPU now (Solve loads the built-in student when it is next shown); while
    // samples are running the worker refuses, and Solve's reload frees it instead
    if (wasBig)
      void inference()
        .solver.unload()
        .catch(() => {});
    void this.loadBase();
  }

  /* ---------------------------------------------------------------- big models */

  /** GiB as typed; '' = none (the planner assumes 4 GiB and says so). Shared by the GGUF and MLC cards. */
  budget = $state(savedBudget());

  /** A big model was loaded into the inference worker: it is the model in use now. */
  private bigLoaded(choice: ModelChoice, info: StudentModelInfo): void {
    studentModel.choose(choice);
    studentModel.info = info;
    this.baseOf = studentModel.source;
    this.base = baseOfBig(studentModel.source, info);
    this.baseError = null;
  }

  private async solver() {
    const solver = inference().solver;
    await solver.init();
    return solver;
  }

  /** The GGUF card. */
  readonly gguf: BigModelState<GgufInspection> = new BigModelState<GgufInspection>({
    budget: () => this.budget,
    inspect: async (src) => (await this.solver()).inspect(src),
    loaded: (c, info) => this.bigLoaded(c, info),
    otherLoading: () => this.mlc.phase === 'loading',
  });
  ggufUrl = $state('');

  /** The MLC / web-llm card. */
  readonly mlc: BigModelState<MlcInspection> = new BigModelState<MlcInspection>({
    budget: () => this.budget,
    inspect: async (src) => (await this.solver()).inspectMlc(src),
    loaded: (c, info) => this.bigLoaded(c, info),
    otherLoading: () => this.gguf.phase === 'loading',
  });
  /** The MLC model's URL as typed (or as a preset put it). */
  mlcUrl = $state(WEBLLM_LLAMA_MODELS[0]!.url);
  readonly mlcDownload = new MlcDownloadState();

  /** Adapter sets made for another model than the big model in use (Solve does not offer them). */
  otherSets = $derived(
    this.base?.gguf || this.base?.mlc ? this.sets.filter((s) => s.model !== this.base?.name) : [],
  );

  /** A dropped / picked .gguf file: its header is read (in the worker) and the plan made. */
  async pickGgufFiles(files: readonly File[]): Promise<void> {
    const f = files.length === 1 ? files[0]! : undefined;
    if (!f || !/\.gguf$/i.test(f.name)) {
      this.gguf.fail(
        new EngineError(
          'BAD_ARGUMENT',
          `Pick one llama.cpp model file (.gguf). Got ${files.map((x) => x.name).join(', ') || 'nothing'}.`,
        ),
      );
      return;
    }
    const pick = { label: f.name, name: f.name.replace(/\.gguf$/i, ''), file: f };
    await this.gguf.inspect({ ...pick, key: `gguf:${++picks}:${f.name}:${f.size}` }, true);
  }

  /** A .gguf URL (read with HTTP Range requests: the server must allow them and this site). */
  async pickGgufUrl(): Promise<void> {
    const url = this.ggufUrl.trim();
    let label: string;
    try {
      // eslint-disable-next-line svelte/prefer-svelte-reactivity -- parsed once, never changed
      label = decodeURIComponent(new URL(url).pathname.split('/').pop() ?? '') || 'model.gguf';
    } catch {
      this.gguf.fail(
        new EngineError(
          'BAD_ARGUMENT',
          `"${url}" is not a URL: give the full address of a .gguf file (https://…).`,
        ),
      );
      return;
    }
    const name = label.replace(/\.gguf$/i, '');
    await this.gguf.inspect({ label, name, key: `gguf:${++picks}:${url}`, url }, true);
  }

  /** The MLC URL in a form web-llm keys its cache by, or null (the card's error says why). */
  private mlcModelUrl(): string | null {
    const url = this.mlcUrl.trim();
    try {
      // eslint-disable-next-line svelte/prefer-svelte-reactivity -- parsed once, never changed
      if (!/^https?:$/.test(new URL(url).protocol)) throw new Error('not http');
      return url;
    } catch {
      this.mlc.fail(
        new EngineError(
          'BAD_ARGUMENT',
          `"${url}" is not a model URL: give the full address of a web-llm model (https://huggingface.co/mlc-ai/<model>), or pick one from the list.`,
        ),
      );
      return null;
    }
  }

  /** The MLC URL changed (typed or picked from the list): what the cache holds of it. */
  async checkMlc(): Promise<void> {
    const url = this.mlcModelUrl();
    if (url === null) return;
    this.mlc.error = null;
    await this.mlcDownload.check(url);
  }

  /** Downloads the MLC model into web-llm's cache (resumes: files kept already are skipped). */
  async downloadMlc(): Promise<void> {
    const url = this.mlcModelUrl();
    if (url === null) return;
    this.mlc.error = null;
    await this.mlcDownload.download(url);
    void this.refreshStorage();
  }

  /** Reads the MLC model from the cache (config, manifest, tokenizer) and plans it. */
  async inspectMlc(): Promise<void> {
    const url = this.mlcModelUrl();
    if (url === null) return;
    let id: string;
    try {
      id = mlcModelId(url);
    } catch (e) {
      this.mlc.fail(e);
      return;
    }
    await this.mlc.inspect({ label: id, name: id, key: `mlc:${++picks}:${url}`, mlcUrl: url }, true);
  }

  /** Remembers the budget for next time and plans both cards again. */
  async setBudget(v: string = this.budget): Promise<void> {
    this.budget = v;
    try {
      if (v.trim() === '') localStorage.removeItem(BUDGET_KEY);
      else localStorage.setItem(BUDGET_KEY, v.trim());
    } catch {
      // private mode: remembered for this page only
    }
    await Promise.all([this.gguf.replan(), this.mlc.replan()]);
  }

  async refresh(): Promise<void> {
    try {
      this.sets = await listAdapterSets();
      this.listError = null;
    } catch (e) {
      this.listError = describeError(e);
    }
  }

  private async rowTask(id: string, task: () => Promise<void>): Promise<boolean> {
    this.busy = id;
    this.rowError = null;
    try {
      await task();
      return true;
    } catch (e) {
      this.rowError = { id, error: describeError(e) };
      return false;
    } finally {
      this.busy = null;
    }
  }

  /** Zip of the set as PEFT folder(s) + our other files; saved through a download link. */
  async exportSet(set: AdapterSetMeta): Promise<void> {
    await this.rowTask(set.id, async () => {
      const base = await this.baseConfig();
      if (set.model !== base.name)
        throw new EngineError(
          'SHAPE_MISMATCH',
          `"${set.name}" belongs to ${set.model}, but the model in use is ${base.name}. Choose ${set.model} above, then export.`,
        );
      const files = await adapterFiles(set.id);
      const zip = zipFiles(exportAdapterSet(files, base.config, { baseModel: set.model }));
      const url = URL.createObjectURL(
        new Blob([zip as Uint8Array<ArrayBuffer>], { type: 'application/zip' }),
      );
      const a = document.createElement('a');
      a.href = url;
      a.download = `${slug(set.name)}-peft.zip`;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    });
  }

  async rename(set: AdapterSetMeta, name: string): Promise<boolean> {
    const ok = await this.rowTask(set.id, () => renameAdapterSet(set.id, name));
    await this.refresh();
    return ok;
  }

  async remove(set: AdapterSetMeta): Promise<void> {
    await this.rowTask(set.id, () => deleteAdapterSet(set.id));
    await this.refresh();
    void this.refreshStorage();
  }

  /** A PEFT zip, or adapter_config.json + adapter_model.safetensors (picked or dropped together). */
  async importFiles(list: readonly File[]): Promise<void> {
    this.importError = null;
    this.importNotice = '';
    if (list.length === 0) return;
    this.importing = true;
    try {
      const base = await this.baseConfig();
      let files: Record<string, Uint8Array> = {};
      for (const f of list) {
        const b = new Uint8Array(await f.arrayBuffer());
        if (list.length === 1 && isZip(b)) files = unzipFiles(b, f.name);
        else files[f.name] = b;
      }
      const got = importAdapterFiles(files, base.config, {
        baseModel: base.name,
        ...(this.importStage !== 'auto' ? { stage: this.importStage } : {}),
      });
      const main = got.files['lora.safetensors'] ?? got.files['rank.safetensors'];
      const cfg = main
        ? readLoraSafetensors(
            main.buffer.slice(main.byteOffset, main.byteOffset + main.byteLength) as ArrayBuffer,
          ).config
        : null;
      const from = list.length === 1 ? list[0]!.name : 'PEFT files';
      const name =
        this.importName.trim() ||
        `${got.stage.toUpperCase()} from ${got.folders[0] ? got.folders[0].replace(/\/$/, '') : from}`;
      const saved = await saveAdapterSet(
        {
          name,
          stage: got.stage,
          model: base.name,
          source: 'imported',
          summary: {
            ...(cfg ? { r: cfg.rank, alpha: cfg.alpha, targets: cfg.targets.join(' ') } : {}),
            ...(got.base ? { peft_base: got.base } : {}),
          },
        },
        got.files,
      );
      this.importNotice = `Imported "${saved.name}" (${got.stage}, ${saved.files.join(', ')}).`;
      this.importName = '';
      await this.refresh();
      void this.refreshStorage();
    } catch (e) {
      this.importError = describeError(e);
    } finally {
      this.importing = false;
    }
  }

  async refreshStorage(): Promise<void> {
    try {
      if (!('storage' in navigator) || typeof navigator.storage.estimate !== 'function') {
        this.storage = null;
        return;
      }
      const e = await navigator.storage.estimate();
      this.storage = { usage: e.usage ?? 0, quota: e.quota ?? 0 };
      this.persisted =
        typeof navigator.storage.persisted === 'function' ? await navigator.storage.persisted() : null;
      this.storageError = null;
    } catch (e) {
      this.storageError = describeError(e);
    }
  }

  async persist(): Promise<void> {
    try {
      this.persisted = await navigator.storage.persist();
    } catch (e) {
      this.storageError = describeError(e);
    }
  }
}

export const models = new ModelsState();
