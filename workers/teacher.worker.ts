// The teacher worker: a web-llm model (its engine created here, so generation runs off the page's
// thread), the teacher run (runTeacher) and its store (IndexedDB, lib/teacher-store.ts), behind
// comlink. The page gets events through a comlink proxy and a result object; failures come back as
// a UserMessage made here (describeError), so the app's own storage errors keep their code.
import * as Comlink from 'comlink';
import { installErrorTransfer } from '../src/app/comlink-errors.ts';
import { type BuiltinId } from '../src/app/lib/builtin-data.ts';
import { DataService } from '../src/app/lib/data-service.ts';
import { listDatasets, loadDataset, saveDataset } from '../src/app/lib/db.ts';
import { AppError, describeError, type UserMessage } from '../src/app/lib/errors.ts';
import { IdbTeacherStore, type TeacherRunSummary } from '../src/app/lib/teacher-store.ts';
import { EngineError } from '../src/engine/errors.ts';
import type { Dataset } from '../src/method/datasets/index.ts';
import {
  DEFAULT_MAX_TOKENS,
  TEACHER_DEFAULTS,
  problemsFromDataset,
  runTeacher,
  teacherConfig,
  teacherDataset,
  type TeacherConfig,
  type TeacherProblem,
  type TeacherProgress,
  type TeacherRunState,
  type TeacherStore,
  type TeacherStoreChange,
} from '../src/method/teacher/run.ts';
import { WebLlmTeacher, webLlmModels, type WebLlmModelInfo } from '../src/method/teacher/webllm.ts';

/** A prebuilt model as the picker shows it, with whether this GPU can run it. */
export interface TeacherModelOption extends WebLlmModelInfo {
  /** Why this GPU cannot run it, or null. */
  unavailable: string | null;
}

export interface TeacherEnvironment {
  /** WebGPU with an adapter, in this worker. */
  webgpu: boolean;
  /** The adapter offers shader-f16 (the q4f16 builds need it). */
  f16: boolean;
  /** No WebGPU or no adapter: why the teacher cannot run here. */
  gpuError: UserMessage | null;
  /** web-llm's prebuilt models that write text; empty when web-llm could not be loaded. */
  models: TeacherModelOption[];
  modelsError: UserMessage | null;
  /** The run's defaults (config.ts): k, temperature, and the longest rationale per answer kind. */
  defaults: { k: number; temperature: number; maxTokens: Readonly<Record<Dataset['kind'], number>> };
}

/** Where a run's problems come from: a built-in dataset, a saved one, or the world (n = count). */
export interface TeacherSource {
  key: BuiltinId | `saved:${string}`;
  /** The first `count` problems of the dataset (all of them when it has fewer). */
  count: number;
  /** The world's seed (key `world`). */
  worldSeed?: number;
  /** The app's public URL (built-in files are fetched relative to it). */
  baseUrl: string;
}

export interface TeacherStartRequest {
  runId: string;
  source: TeacherSource;
  modelId: string;
  k: number;
  temperature: number;
  maxTokens: number;
  /** The run's (and the dataset's) name. */
  name: string;
}

/** One finished problem, as the page shows the last ones written. */
export interface WrittenProblem {
  index: number;
  id: string;
  question: string;
  kind: Dataset['kind'];
  rationales: { text: string; correct: boolean; answer: string | null }[];
}

export type TeacherEvent =
  | { type: 'phase'; phase: 'data' | 'model' | 'writing' | 'dataset' }
  | { type: 'load'; fraction: number; text: string }
  | { type: 'progress'; progress: TeacherProgress }
  | { type: 'record'; problem: WrittenProblem };

export interface TeacherOutcome {
  runId: string;
  status: 'finished' | 'cancelled' | 'failed';
  progress: TeacherProgress | null;
  /** The dataset saved from the finished run (Explore lists it). */
  dataset: { id: string; name: string; questions: number; pos: number; neg: number } | null;
  error: UserMessage | null;
}

/** A store that tells the page about every problem it saves. */
class ReportingStore implements TeacherStore {
  private state: TeacherRunState | null = null;
  constructor(
    private readonly inner: TeacherStore,
    private readonly onRecord: (p: WrittenProblem) => void,
  ) {}
  async load(runId: string): Promise<TeacherRunState | null> {
    this.state = await this.inner.load(runId);
    return this.state;
  }
  async save(runId: string, change: TeacherStoreChange): Promise<void> {
    await this.inner.save(runId, change);
    if (change.type === 'start') this.state = { header: change.header, records: [], partial: null };
    const header = this.state?.header;
    if (change.type !== 'problem' || !header) return;
    const { record } = change;
    this.onRecord({
      index: record.index,
      id: record.id,
      question: header.problems[record.index]?.question ?? '',
      kind: header.config.kind,
      rationales: record.rationales.map((r) => ({ text: r.text, correct: r.correct, answer: r.answer })),
    });
  }
  delete(runId: string): Promise<void> {
    return this.inner.delete(runId);
  }
}

/**
 * A failure as the page shows it. A storage error of the app keeps its own code (QUOTA_FULL); a
 * download that stopped (teacherError's TRUNCATED_FILE: the model's files) is the app's DOWNLOAD,
 * titled "Could not download the file" rather than "This file is incomplete".
 */
function userError(e: unknown): UserMessage {
  if (e instanceof EngineError && e.cause instanceof AppError) return describeError(e.cause);
  if (e instanceof EngineError && e.code === 'TRUNCATED_FILE')
    return describeError(new AppError('DOWNLOAD', e.message, { cause: e }));
  return describeError(e);
}

/** Codes after which web-llm's engine is not to be used again. */
const BROKEN = new Set(['DEVICE_LOST', 'OUT_OF_MEMORY', 'VALIDATION']);

export class TeacherService {
  private readonly store = new IdbTeacherStore();
  private model: WebLlmTeacher | null = null;
  private running: AbortController | null = null;

  /** WebGPU, shader-f16 and web-llm's model list, as this worker sees them. */
  async environment(): Promise<TeacherEnvironment> {
    let webgpu = false;
    let f16 = false;
    let gpuError: UserMessage | null = null;
    const gpu = 'gpu' in navigator ? navigator.gpu : undefined;
    if (!gpu)
      gpuError = describeError(
        new EngineError(
          'NO_WEBGPU',
          'This browser has no WebGPU, which the teacher model needs: use a recent Chrome or Edge (or another browser with WebGPU turned on).',
        ),
      );
    else {
      const adapter = await gpu.requestAdapter().catch(() => null);
      if (!adapter)
        gpuError = describeError(
          new EngineError(
            'NO_ADAPTER',
            'WebGPU is there, but the browser gave no GPU adapter, so the teacher model cannot run here.',
          ),
        );
      else {
        webgpu = true;
        f16 = adapter.features.has('shader-f16');
      }
    }
    let models: TeacherModelOption[] = [];
    let modelsError: UserMessage | null = null;
    try {
      models = (await webLlmModels()).map((m) => ({
        ...m,
        unavailable: !webgpu
          ? 'no WebGPU here'
          : m.needsF16 && !f16
            ? 'needs shader-f16, which this GPU lacks'
            : null,
      }));
    } catch (e) {
      modelsError = describeError(
        new AppError(
          'DOWNLOAD',
          `Could not load web-llm, the library that runs the teacher models (${e instanceof Error ? e.message : String(e)}). ` +
            'Check the connection, then reload the page and open the teacher again.',
          { cause: e },
        ),
      );
    }
    const defaults = {
      k: TEACHER_DEFAULTS.k,
      temperature: TEACHER_DEFAULTS.temperature,
      maxTokens: { ...DEFAULT_MAX_TOKENS },
    };
    return { webgpu, f16, gpuError, models, modelsError, defaults };
  }

  /** Starts a new run: loads its problems, then writes (see `resume`). */
  async start(req: TeacherStartRequest, onEvent: (e: TeacherEvent) => void): Promise<TeacherOutcome> {
    return this.exclusive(req.runId, onEvent, async (signal) => {
      onEvent({ type: 'phase', phase: 'data' });
      const dataset = await this.problemsOf(req.source);
      const problems = problemsFromDataset(dataset).slice(0, Math.max(1, Math.floor(req.source.count)));
      const config = teacherConfig({
        modelId: req.modelId,
        kind: dataset.kind,
        k: req.k,
        temperature: req.temperature,
        maxTokens: req.maxTokens,
        name: req.name,
      });
      return this.write(req.runId, onEvent, signal, { problems, config });
    });
  }

  /** Goes on with a saved run (after Cancel, a failure or a reload); a finished one only saves its dataset. */
  async resume(runId: string, onEvent: (e: TeacherEvent) => void): Promise<TeacherOutcome> {
    return this.exclusive(runId, onEvent, (signal) => this.write(runId, onEvent, signal, null));
  }

  /** Stops the run after the call in progress (web-llm is interrupted; nothing saved is lost). */
  cancel(): void {
    this.running?.abort();
  }

  /** Frees the teacher model's GPU memory (before training the student, say). */
  async unload(): Promise<void> {
    const m = this.model;
    this.model = null;
    await m?.unload();
  }

  private async exclusive(
    runId: string,
    onEvent: (e: TeacherEvent) => void,
    body: (signal: AbortSignal) => Promise<TeacherOutcome>,
  ): Promise<TeacherOutcome> {
    if (this.running)
      return failed(
        runId,
        new EngineError('BAD_ARGUMENT', 'A teacher run is already going: cancel it first, or wait for it.'),
      );
    const ctl = new AbortController();
    this.running = ctl;
    try {
      return await body(ctl.signal);
    } catch (e) {
      return failed(runId, e);
    } finally {
      this.running = null;
      release(onEvent);
    }
  }

  private async write(
    runId: string,
    onEvent: (e: TeacherEvent) => void,
    signal: AbortSignal,
    fresh: { problems: TeacherProblem[]; config: TeacherConfig } | null,
  ): Promise<TeacherOutcome> {
    const send = (e: TeacherEvent) => void onEvent(e);
    const saved = fresh ? null : await this.store.summary(runId);
    if (!fresh && !saved)
      throw new EngineError(
        'BAD_ARGUMENT',
        `There is no saved teacher run "${runId}" to go on with: it was deleted. Start a new one.`,
      );
    let state: TeacherRunState;
    let progress: TeacherProgress | null = null;
    if (saved?.finished) {
      // every problem is written: only the dataset is missing (its save failed before)
      const s = await this.store.load(runId);
      if (!s) throw new EngineError('BAD_ARGUMENT', `The saved teacher run "${runId}" is gone.`);
      state = s;
    } else {
      const modelId = fresh ? fresh.config.modelId : saved!.modelId;
      if (this.model?.id !== modelId) {
        await this.unload().catch(() => {});
        this.model = new WebLlmTeacher({ modelId });
      }
      const model = this.model;
      send({ type: 'phase', phase: 'model' });
      let writing = false;
      try {
        const res = await runTeacher({
          model,
          store: new ReportingStore(this.store, (problem) => send({ type: 'record', problem })),
          runId,
          ...(fresh ?? {}),
          signal,
          onLoadProgress: (p) => send({ type: 'load', fraction: p.fraction, text: p.text }),
          onProgress: (p) => {
            if (!writing) send({ type: 'phase', phase: 'writing' });
            writing = true;
            send({ type: 'progress', progress: p });
          },
        });
        progress = res.progress;
        if (res.status === 'cancelled')
          return { runId, status: 'cancelled', progress, dataset: null, error: null };
        state = res.state;
      } catch (e) {
        if (e instanceof EngineError && BROKEN.has(e.code)) {
          this.model = null;
          await model.unload().catch(() => {});
        }
        throw e;
      }
    }
    // a finished run's dataset is saved once (again only if it was deleted in Explore since)
    if (saved?.datasetId && (await listDatasets()).some((d) => d.id === saved.datasetId))
      return { runId, status: 'finished', progress, dataset: null, error: null };
    send({ type: 'phase', phase: 'dataset' });
    const dataset = teacherDataset(state);
    let pos = 0;
    let all = 0;
    for (const p of dataset.problems)
      for (const r of p.rationales) {
        all++;
        if (r.correct) pos++;
      }
    const rec = await saveDataset(dataset, {
      source: `teacher ${state.header.config.modelId}`,
      pos,
      neg: all - pos,
    });
    await this.store.setDataset(runId, rec.id);
    return {
      runId,
      status: 'finished',
      progress,
      dataset: { id: rec.id, name: rec.name, questions: rec.questions, pos, neg: all - pos },
      error: null,
    };
  }

  private async problemsOf(source: TeacherSource): Promise<Dataset> {
    if (source.key.startsWith('saved:')) return (await loadDataset(source.key.slice(6))).dataset;
    const world = { n: Math.max(1, Math.floor(source.count)), seed: source.worldSeed ?? 1 };
    return (await new DataService().builtin(source.key as BuiltinId, source.baseUrl, world)).dataset;
  }
}

/** Lets the page's callback go once a run is over (a comlink proxy holds a MessagePort open). */
function release(f: unknown): void {
  const r = (f as { [Comlink.releaseProxy]?: unknown })[Comlink.releaseProxy];
  if (typeof r === 'function') (r as () => void)();
}

function failed(runId: string, e: unknown): TeacherOutcome {
  return { runId, status: 'failed', progress: null, dataset: null, error: userError(e) };
}

export type { TeacherRunSummary };

installErrorTransfer();
Comlink.expose(new TeacherService());
