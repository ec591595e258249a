/**
 * Display state of the teacher panel (in Explore): a web-llm model writes k rationales per problem
 * of a dataset in the teacher worker (workers/teacher.worker.ts); our answer checking labels them;
 * the finished run becomes a dataset that Explore lists and Train uses.
 *
 * The page holds settings and what the worker reports (phase, the model's load progress, problems
 * done, D_pos / D_neg so far, tokens/s, ETA, the last problems written). The run itself lives in
 * IndexedDB (lib/teacher-store.ts): Cancel stops it after the call in progress, and Resume goes on
 * from the last saved call, after a reload too. The page lists and deletes saved runs itself.
 *
 * One instance per page (`teacherState()`), so a run keeps reporting while Explore is not shown.
 */
import type { DatasetRecord } from '../lib/db.ts';
import type { TeacherProgress } from '../../method/teacher/state.ts';
import type {
  TeacherEnvironment,
  TeacherEvent,
  TeacherModelOption,
  TeacherOutcome,
  TeacherService,
  TeacherSource,
  WrittenProblem,
} from '../../../workers/teacher.worker.ts';
import teacherWorkerUrl from '../../../workers/teacher.worker.ts?worker&url';
import { Comlink, endWorker, publicUrl, workerFor } from '../engine-client.ts';
import { BUILTIN_DATASETS } from '../lib/builtin-data.ts';
import { describeError, type UserMessage } from '../lib/errors.ts';
import { IdbTeacherStore, type TeacherRunSummary } from '../lib/teacher-store.ts';

export type { TeacherModelOption, WrittenProblem };

/** The models to offer first (docs/teacher.md): a math model in both builds, and the 7B chat model. */
export const SUGGESTED_MODELS = [
  'Qwen2.5-Math-1.5B-Instruct-q4f16_1-MLC',
  'Qwen2.5-Math-1.5B-Instruct-q4f32_1-MLC',
  'Llama-2-7b-chat-hf-q4f16_1-MLC',
] as const;

/** What the worker is doing: loading the problems, loading the model, writing, saving the dataset. */
export type TeacherPhase = 'idle' | 'data' | 'model' | 'writing' | 'dataset' | 'cancelling';

type TeacherClient = Comlink.Remote<TeacherService>;
let client: TeacherClient | null = null;
function worker(): TeacherClient {
  client ??= Comlink.wrap<TeacherService>(workerFor('teacher', new URL(teacherWorkerUrl, location.href)));
  return client;
}

/** How many of the last finished problems the panel shows. */
const RECENT = 4;

const newRunId = () => `teacher-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

export class TeacherState {
  /** WebGPU, shader-f16 and web-llm's models, from the worker (null until asked). */
  env = $state.raw<TeacherEnvironment | null>(null);
  checking = $state(false);
  runs = $state.raw<TeacherRunSummary[]>([]);
  listError = $state.raw<UserMessage | null>(null);

  // ---- a new run's settings
  modelId = $state('');
  /** `world`, `gsm8k`, `math500` or `saved:<dataset id>`. */
  source = $state<TeacherSource['key']>('world');
  /** The first `count` problems (the world generates exactly that many). */
  count = $state(20);
  worldSeed = $state(1);
  k = $state(4);
  temperature = $state(0.7);
  /** null: the default for the dataset's answer kind. */
  maxTokens = $state<number | null>(null);
  name = $state('');

  // ---- the run being written
  phase = $state<TeacherPhase>('idle');
  runId = $state<string | null>(null);
  runName = $state('');
  load = $state.raw<{ fraction: number; text: string } | null>(null);
  progress = $state.raw<TeacherProgress | null>(null);
  recent = $state.raw<WrittenProblem[]>([]);
  error = $state.raw<UserMessage | null>(null);
  /** What the last run ended with, in words. */
  notice = $state('');
  /** The dataset the last run made. */
  made = $state.raw<TeacherOutcome['dataset']>(null);

  busy = $derived(this.phase !== 'idle');
  /** The model list with the suggested ones first. */
  suggested = $derived(
    SUGGESTED_MODELS.map((id) => this.env?.models.find((m) => m.id === id)).filter(
      (m): m is TeacherModelOption => m !== undefined,
    ),
  );

  private store = new IdbTeacherStore();
  private opened = false;
  private seq = 0;

  /** First open of the panel: the saved runs, then WebGPU and the model list from the worker. */
  async open(): Promise<void> {
    if (this.opened) return;
    this.opened = true;
    await this.refreshRuns();
    this.checking = true;
    try {
      const env = await worker().environment();
      this.env = env;
      if (this.modelId === '') {
        const firstOk = (ms: readonly TeacherModelOption[]) => ms.find((m) => m.unavailable === null);
        this.modelId = (firstOk(this.suggested) ?? firstOk(env.models) ?? env.models[0])?.id ?? '';
      }
      this.k = env.defaults.k;
      this.temperature = env.defaults.temperature;
    } catch (e) {
      this.opened = false; // try again on the next open
      this.error = describeError(e);
    } finally {
      this.checking = false;
    }
  }

  async refreshRuns(): Promise<void> {
    try {
      this.runs = await this.store.list();
      this.listError = null;
    } catch (e) {
      this.listError = describeError(e);
    }
  }

  /** The answer kind of a source (for the default longest rationale). */
  kindOf(key: string, datasets: readonly DatasetRecord[]): DatasetRecord['kind'] | null {
    if (key.startsWith('saved:')) return datasets.find((d) => `saved:${d.id}` === key)?.kind ?? null;
    return BUILTIN_DATASETS.find((b) => b.id === key)?.kind ?? null;
  }

  /** The longest rationale the run will use. */
  maxTokensFor(datasets: readonly DatasetRecord[]): number {
    const kind = this.kindOf(this.source, datasets);
    return this.maxTokens ?? (kind && this.env ? this.env.defaults.maxTokens[kind] : 512);
  }

  /** The name a run gets when the user gives none. */
  defaultName(datasets: readonly DatasetRecord[]): string {
    const src = this.source.startsWith('saved:')
      ? (datasets.find((d) => `saved:${d.id}` === this.source)?.name ?? 'dataset')
      : (BUILTIN_DATASETS.find((b) => b.id === this.source)?.title ?? this.source);
    const model = this.modelId.replace(/-MLC$/, '');
    return `${model} on ${src} (${this.count})`;
  }

  /** Starts a new run with the settings above. */
  async start(datasets: readonly DatasetRecord[]): Promise<TeacherOutcome | null> {
    if (this.busy) return null;
    const runId = newRunId();
    const name = this.name.trim() || this.defaultName(datasets);
    return this.drive(runId, name, (onEvent) =>
      worker().start(
        {
          runId,
          source: {
            key: this.source,
            count: this.count,
            worldSeed: this.worldSeed,
            baseUrl: publicUrl(''),
          },
          modelId: this.modelId,
          k: this.k,
          temperature: this.temperature,
          maxTokens: this.maxTokensFor(datasets),
          name,
        },
        onEvent,
      ),
    );
  }

  /** Goes on with a saved run (or saves the dataset of a finished one). */
  async resume(runId: string): Promise<TeacherOutcome | null> {
    if (this.busy) return null;
    const run = this.runs.find((r) => r.runId === runId);
    return this.drive(runId, run?.name ?? runId, (onEvent) => worker().resume(runId, onEvent));
  }

  /** Stops after the call in progress. */
  cancel(): void {
    if (!this.busy || this.phase === 'cancelling') return;
    this.phase = 'cancelling';
    void worker().cancel();
  }

  async remove(runId: string): Promise<void> {
    if (this.runId === runId && this.busy) return;
    try {
      await this.store.delete(runId);
    } catch (e) {
      this.listError = describeError(e);
    }
    await this.refreshRuns();
  }

  /** Frees the teacher's GPU memory: the worker (and web-llm's device with it) ends. */
  unload(): void {
    if (this.busy) return;
    endWorker('teacher');
    client = null;
    this.notice = 'The teacher model is unloaded; its files stay in the browser cache.';
  }

  private async drive(
    runId: string,
    name: string,
    call: (onEvent: (e: TeacherEvent) => void) => Promise<TeacherOutcome>,
  ): Promise<TeacherOutcome | null> {
    const seq = ++this.seq;
    this.phase = 'data';
    this.runId = runId;
    this.runName = name;
    this.load = null;
    this.progress = null;
    this.recent = [];
    this.error = null;
    this.notice = '';
    this.made = null;
    let listed = false;
    // Events come through their own message channel, so one sent before the run ended may arrive
    // after the call's result: once the call has returned, they are stale (a late "saving" phase
    // would otherwise hold the view in "Saving the dataset…" over a finished run).
    let ended = false;
    const onEvent = Comlink.proxy((e: TeacherEvent) => {
      if (seq !== this.seq || ended) return;
      if (e.type === 'phase') {
        if (this.phase !== 'cancelling') this.phase = e.phase;
        if (e.phase === 'writing' && !listed) {
          listed = true;
          void this.refreshRuns();
        }
      } else if (e.type === 'load') this.load = { fraction: e.fraction, text: e.text };
      else if (e.type === 'progress') this.progress = e.progress;
      else this.recent = [e.problem, ...this.recent].slice(0, RECENT);
    });
    let out: TeacherOutcome;
    try {
      out = await call(onEvent);
    } catch (e) {
      out = { runId, status: 'failed', progress: null, dataset: null, error: describeError(e) };
    }
    ended = true;
    if (seq !== this.seq) return out;
    this.phase = 'idle';
    if (out.progress) this.progress = out.progress;
    if (out.status === 'failed') this.error = out.error;
    else if (out.status === 'cancelled')
      this.notice = `Cancelled "${name}": ${out.progress?.done ?? 0} of ${out.progress?.total ?? '?'} problems are saved. Resume goes on from there.`;
    else {
      this.made = out.dataset;
      this.notice = out.dataset
        ? `Finished "${name}": saved as a dataset of ${out.dataset.questions} questions, ${out.dataset.pos} D_pos / ${out.dataset.neg} D_neg rationales.`
        : `"${name}" is finished; its dataset was saved before.`;
    }
    await this.refreshRuns();
    return out;
  }
}

let instance: TeacherState | null = null;
/** The page's one teacher state (created on first use). */
export function teacherState(): TeacherState {
  instance ??= new TeacherState();
  return instance;
}
