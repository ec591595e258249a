/**
 * A big LLaMA's card on the Models view (a llama.cpp GGUF file, or web-llm's MLC build in
 * mlc-card.svelte.ts): the pick, its facts and the memory planner's verdict for the samples,
 * context and GPU memory budget set, then the load into the inference worker with a progress bar
 * and Cancel. Once loaded it is the model in use (Solve finds it in the worker); the page
 * (ModelsState, models.svelte.ts) owns the budget both cards share and what "in use" means.
 *
 * @example
 *   const gguf = new GgufCardState({ budget: () => '', loaded: (c, info) => …, otherLoading: () => false });
 *   await gguf.pickFiles([file]); // reads the header in the worker and plans for m = 32
 *   await gguf.load(); // progress in gguf.progress; gguf.cancel() stops it
 */
import { EngineError } from '../../engine/errors.ts';
import type {
  BigPlanOptions,
  GgufInspection,
  LoadProgress,
  MlcInspection,
  PlanView,
  StudentModelInfo,
  StudentSource,
} from '../../method/api/runtime.ts';
import { Comlink, inference } from '../engine-client.ts';
import { describeError, type UserMessage } from '../lib/errors.ts';
import { studentModel, type ModelChoice } from './student-model.svelte.ts';

/** Solve's maximum m (method/api/runtime.ts MAX_SAMPLES; not imported: it would bring the engine into the page). */
export const GGUF_MAX_SAMPLES = 32;
const BUDGET_KEY = 'd2g.gpuBudgetGiB';

/** The GPU memory budget the user gave last time, in GiB ('' = none: the planner assumes 4 GiB). */
export function savedBudget(): string {
  try {
    return localStorage.getItem(BUDGET_KEY) ?? '';
  } catch {
    return '';
  }
}

/** Remembers the budget as typed for next time ('' forgets it). */
export function saveBudget(typed: string): void {
  try {
    if (typed.trim() === '') localStorage.removeItem(BUDGET_KEY);
    else localStorage.setItem(BUDGET_KEY, typed.trim());
  } catch {
    // private mode: remembered for this page only
  }
}

/** The GPU memory budget as typed (GiB) → bytes for the planner; '' or nonsense = none. */
function budgetBytes(typed: string): number | undefined {
  const gib = Number(typed.trim().replace(',', '.'));
  return typed.trim() !== '' && gib > 0 ? Math.round(gib * 2 ** 30) : undefined;
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

/** Numbers the picks of both cards, so that no two keys are alike. */
let picks = 0;

/** A big model (GGUF or MLC): planned and loaded by the Models view itself. */
export function isBig(c: ModelChoice): boolean {
  return c.gguf !== undefined || c.ggufUrl !== undefined || c.mlcUrl !== undefined;
}

/** A pick as the worker's source (the file, the GGUF URL or the MLC URL). */
function sourceOf(pick: BigPick): Pick<StudentSource, 'gguf' | 'ggufUrl' | 'mlcUrl'> {
  if (pick.file) return { gguf: pick.file };
  if (pick.url !== undefined) return { ggufUrl: pick.url };
  return { mlcUrl: pick.mlcUrl! };
}

/** What a big model's card needs from the page: the budget, and what to do once loaded. */
export interface BigHost {
  budget(): string;
  loaded(choice: ModelChoice, info: StudentModelInfo): void;
  /** Another big model is loading (the worker loads one at a time). */
  otherLoading(): boolean;
}

/**
 * One big model's card (GGUF or MLC): the pick, its facts and the planner's verdict for the
 * samples, context and budget set, then the load into the inference worker with progress and
 * Cancel; once loaded it is the model in use (Solve finds it in the worker). A card says how its
 * kind is read (`read`) and how a pick is made.
 */
export abstract class BigModelState<I extends GgufInspection | MlcInspection> {
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

  constructor(private readonly host: BigHost) {}

  /** Reads the model's facts and plans it (in the inference worker). */
  protected abstract read(src: StudentSource): Promise<I>;

  /** The inference worker, started. */
  protected async solver() {
    const solver = inference().solver;
    await solver.init();
    return solver;
  }

  /** A key no other pick has: `<kind>:<n>:<what>`. */
  protected newKey(kind: 'gguf' | 'mlc', what: string): string {
    return `${kind}:${++picks}:${what}`;
  }

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
      const seen = await this.read(
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

/** The GGUF card: a .gguf file dropped or picked, or its URL; the header is read in the worker. */
export class GgufCardState extends BigModelState<GgufInspection> {
  /** The .gguf URL as typed. */
  url = $state('');

  protected override async read(src: StudentSource): Promise<GgufInspection> {
    return (await this.solver()).inspect(src);
  }

  /** A dropped / picked .gguf file: its header is read (in the worker) and the plan made. */
  async pickFiles(files: readonly File[]): Promise<void> {
    const f = files.length === 1 ? files[0]! : undefined;
    if (!f || !/\.gguf$/i.test(f.name)) {
      this.fail(
        new EngineError(
          'BAD_ARGUMENT',
          `Pick one llama.cpp model file (.gguf). Got ${files.map((x) => x.name).join(', ') || 'nothing'}.`,
        ),
      );
      return;
    }
    const pick = { label: f.name, name: f.name.replace(/\.gguf$/i, ''), file: f };
    await this.inspect({ ...pick, key: this.newKey('gguf', `${f.name}:${f.size}`) }, true);
  }

  /** The .gguf URL as typed (read with HTTP Range requests: the server must allow them and this site). */
  async pickUrl(): Promise<void> {
    const url = this.url.trim();
    let label: string;
    try {
      // eslint-disable-next-line svelte/prefer-svelte-reactivity -- parsed once, never changed
      label = decodeURIComponent(new URL(url).pathname.split('/').pop() ?? '') || 'model.gguf';
    } catch {
      this.fail(
        new EngineError(
          'BAD_ARGUMENT',
          `"${url}" is not a URL: give the full address of a .gguf file (https://…).`,
        ),
      );
      return;
    }
    const name = label.replace(/\.gguf$/i, '');
    await this.inspect({ label, name, key: this.newKey('gguf', url), url }, true);
  }
}
