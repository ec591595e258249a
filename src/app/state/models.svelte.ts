/**
 * The Models view's state: the built-in student's card, the base model in use (and loading
 * another: our safetensors model, or a big LLaMA — a GGUF file, or web-llm's MLC build downloaded
 * into the browser's Cache Storage — planned, then loaded into the inference worker with a progress
 * bar: one card each, `gguf` (big-model.svelte.ts) and `mlc` (mlc-card.svelte.ts), sharing the GPU
 * memory budget kept here), the adapter sets (rename, delete, export as PEFT, import from PEFT) and
 * the browser's storage. One object for the page (`models`), because App renders `<ModelsView />`
 * without props and the state should outlive a visit to another view.
 *
 * Model files are checked before they are chosen (src/app/lib/model-files.ts); the card's
 * markdown is parsed by src/app/lib/card-markdown.ts.
 */
import { readLoraSafetensors } from '../../engine/io/checkpoint.ts';
import { EngineError } from '../../engine/errors.ts';
import type { LlamaConfig } from '../../engine/model/config.ts';
import {
  exportAdapterSet,
  importAdapterFiles,
  isZip,
  unzipFiles,
  zipFiles,
} from '../../method/adapter-zip.ts';
import type { GgufInspection, MlcInspection, StudentModelInfo } from '../../method/api/runtime.ts';
import { inference, publicUrl } from '../engine-client.ts';
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
import { parseCard, type CardBlock } from '../lib/card-markdown.ts';
import { GgufCardState, isBig, saveBudget, savedBudget, type BigHost } from './big-model.svelte.ts';
import { MlcCardState } from './mlc-card.svelte.ts';
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

  /** What a big model's card needs from the page; `other` is the other card (the worker loads one at a time). */
  private bigHost(other: () => { phase: string }): BigHost {
    return {
      budget: () => this.budget,
      loaded: (c, info) => this.bigLoaded(c, info),
      otherLoading: () => other().phase === 'loading',
    };
  }

  /** The GGUF card. */
  readonly gguf: GgufCardState = new GgufCardState(this.bigHost(() => this.mlc));
  /** The MLC / web-llm card; a download changes what this browser stores. */
  readonly mlc: MlcCardState = new MlcCardState(
    this.bigHost(() => this.gguf),
    () => void this.refreshStorage(),
  );

  /** Adapter sets made for another model than the big model in use (Solve does not offer them). */
  otherSets = $derived(
    this.base?.gguf || this.base?.mlc ? this.sets.filter((s) => s.model !== this.base?.name) : [],
  );

  /** Remembers the budget for next time and plans both cards again. */
  async setBudget(v: string = this.budget): Promise<void> {
    this.budget = v;
    saveBudget(v);
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
