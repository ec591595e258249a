/**
 * Train's student: which model a run trains — the one chosen in Models for a new run, the run's
 * own when it goes on — as the trainer worker's source, and the plan of the next run (what of the
 * data the student's tokenizer reads, and the memory planner's verdict on one LoRA step).
 *
 * Plans come from a worker of their own (`planNextRun`: no GPU device; the trainer checks the same
 * plan on its device before a run allocates anything).
 *
 * A run names its model (`RunModel` in its record): the built-in student and models by URL (our
 * safetensors, a GGUF file, web-llm's MLC build in the browser's cache) open again by themselves
 * after a reload; a file from the user's disk cannot (no page may reopen a file on its own), so
 * the run waits until the user picks the same file again (name and size must match).
 *
 * @example
 *   const src = trainerSource(studentModel.source); // { gguf: file, key: 'gguf-file:…', name }
 *   const model = runModelOf(studentModel.source);  // stored with the run
 *   sourceOfRun(model, { file: picked });           // after a reload; null until the file is picked
 */
import type { StudentSource } from '../../method/api/runtime.ts';
import type { StageName } from '../../method/stages/config.ts';
import type {
  DataCheck,
  InputShapes,
  TrainPlanner,
  TrainPlanRequest,
  TrainPlanResult,
  TrainPlanView,
  TrainStudent,
} from '../../method/api/trainer.ts';
import plannerWorkerUrl from '../../../workers/planner.worker.ts?worker&url';
import { installErrorTransfer } from '../comlink-errors.ts';
import { Comlink } from '../engine-client.ts';
import { describeError, type UserMessage } from '../lib/errors.ts';
import type { RunModel } from '../lib/runs-store.ts';
import { BUILTIN_STUDENT, type ModelChoice } from './student-model.svelte.ts';

let planner: Comlink.Remote<TrainPlanner> | null = null;

/** The planner worker (workers/planner.worker.ts: no GPU device), made on first use. */
function plannerWorker(): Comlink.Remote<TrainPlanner> {
  if (!planner) {
    installErrorTransfer();
    const url = new URL(plannerWorkerUrl, location.href);
    planner = Comlink.wrap<TrainPlanner>(new Worker(url, { type: 'module', name: 'planner' }));
  }
  return planner;
}

/**
 * The next run's plan from the planner worker (so the trainer worker starts only when a run
 * does): the student opened there, then planned.
 */
export async function planNextRun(src: StudentSource, req: TrainPlanRequest): Promise<TrainPlanResult> {
  const p = plannerWorker();
  await p.open(src);
  return p.plan(req);
}

/**
 * The shapes of the frozen adapters in an earlier stage's set (its files, read in the planner
 * worker), for a plan request's `inputShapes`; refused when the set is not one `stage` builds on.
 */
export function inputShapesOf(stage: StageName, files: Record<string, ArrayBuffer>): Promise<InputShapes> {
  return plannerWorker().inputShapes(stage, Comlink.transfer(files, Object.values(files)));
}

/** A GGUF or MLC model (planned before it loads; recompute on by default). */
export function isBigChoice(c: Pick<ModelChoice, 'gguf' | 'ggufUrl' | 'mlcUrl'>): boolean {
  return c.gguf !== undefined || c.ggufUrl !== undefined || c.mlcUrl !== undefined;
}

const fileOf = (b: Blob): { name: string; size: number; lastModified: number } => ({
  name: (b as Partial<File>).name ?? 'model',
  size: b.size,
  lastModified: (b as Partial<File>).lastModified ?? 0,
});

/** How a run names its student (stored with it, enough to open it again). */
export function runModelOf(c: ModelChoice): RunModel {
  const base = { name: c.name, label: c.label };
  if (c.builtin) return { ...base, kind: 'builtin' };
  if (c.gguf) return { ...base, kind: 'gguf-file', file: fileOf(c.gguf) };
  if (c.ggufUrl !== undefined) return { ...base, kind: 'gguf-url', url: c.ggufUrl };
  if (c.mlcUrl !== undefined) return { ...base, kind: 'mlc', url: c.mlcUrl };
  if (c.modelBytes)
    return {
      ...base,
      kind: 'safetensors-file',
      file: { name: c.label, size: c.modelBytes.byteLength, lastModified: 0 },
    };
  return {
    ...base,
    kind: 'safetensors-url',
    url: c.modelUrl ?? '',
    ...(c.tokenizerUrl !== undefined ? { tokenizerUrl: c.tokenizerUrl } : {}),
  };
}

/**
 * The trainer worker's source for a model choice. A GGUF file goes as the File itself (a Blob
 * crosses to the worker without being copied); keys are stable across reloads (a file's name,
 * size and date; a URL), so a resumed run finds the worker holding its model.
 */
export function trainerSource(c: ModelChoice): StudentSource {
  const name = c.name;
  if (c.gguf) {
    const f = fileOf(c.gguf);
    return { gguf: c.gguf, name, key: `gguf-file:${f.name}:${f.size}:${f.lastModified}` };
  }
  if (c.ggufUrl !== undefined) return { ggufUrl: c.ggufUrl, name, key: `gguf-url:${c.ggufUrl}` };
  if (c.mlcUrl !== undefined) return { mlcUrl: c.mlcUrl, name, key: `mlc:${c.mlcUrl}` };
  if (c.modelBytes)
    return {
      modelBytes: c.modelBytes,
      ...(c.tokenizerJson !== undefined ? { tokenizerJson: c.tokenizerJson } : {}),
      name,
      key: `bytes:${c.label}:${c.modelBytes.byteLength}`,
    };
  return {
    ...(c.modelUrl !== undefined ? { modelUrl: c.modelUrl } : {}),
    ...(c.tokenizerUrl !== undefined ? { tokenizerUrl: c.tokenizerUrl } : {}),
    name,
    key: `url:${c.modelUrl ?? name}`,
  };
}

/** Whether a picked file is the one a run trained on (name and size; a date when both have one). */
export function fileMatches(m: RunModel, f: Blob): boolean {
  const want = m.file;
  if (!want) return false;
  const got = fileOf(f);
  return got.name === want.name && got.size === want.size;
}

/**
 * The source of a run's student: built-in and URL models as stored; a file from the current
 * choice in Models when it is the same file, or the one the user picked again (`picked`); null
 * when a file is needed and none is at hand.
 */
export function sourceOfRun(
  m: RunModel | undefined,
  current: ModelChoice,
  picked: Blob | undefined,
): StudentSource | null {
  if (!m || m.kind === 'builtin') return trainerSource(BUILTIN_STUDENT);
  const by = (c: Omit<ModelChoice, 'name' | 'label' | 'builtin'>) =>
    trainerSource({ ...c, name: m.name, label: m.label, builtin: false });
  switch (m.kind) {
    case 'safetensors-url':
      return by({
        modelUrl: m.url ?? '',
        ...(m.tokenizerUrl !== undefined ? { tokenizerUrl: m.tokenizerUrl } : {}),
      });
    case 'gguf-url':
      return by({ ggufUrl: m.url ?? '' });
    case 'mlc':
      return by({ mlcUrl: m.url ?? '' });
    case 'gguf-file': {
      const f = picked ?? (current.gguf && fileMatches(m, current.gguf) ? current.gguf : undefined);
      return f ? by({ gguf: f }) : null;
    }
    case 'safetensors-file':
      return current.modelBytes &&
        current.label === m.file?.name &&
        current.modelBytes.byteLength === m.file.size
        ? trainerSource(current)
        : null;
  }
}

/** The budget as typed in GiB (Models' field, shared) → bytes; '' or nonsense: none (4 GiB assumed). */
export function budgetBytes(typed: string): number | undefined {
  const gib = Number(typed.trim().replace(',', '.'));
  return typed.trim() !== '' && gib > 0 ? Math.round(gib * 2 ** 30) : undefined;
}

/** A plan's refusal (or "nothing to train on") as the view shows it, `after` added to its message. */
export function refusalOf(r: TrainPlanResult, after: string): UserMessage | null {
  const e = r.plan?.error ?? (r.problem ? { code: 'BAD_ARGUMENT', message: r.problem } : null);
  if (!e) return null;
  const title =
    e.code === 'LIMIT_EXCEEDED'
      ? 'Refused: too big for what this GPU binds'
      : e.code === 'OUT_OF_MEMORY'
        ? 'Refused: more than the memory budget'
        : 'Nothing to train on';
  return { code: e.code, title, message: `${e.message}${r.plan ? after : ''}` };
}

/** What the view says of a run whose student is a file from the disk, after a reload. */
export function needFileNotice(stage: string, m: RunModel | undefined, step: number): string {
  return m?.kind === 'gguf-file'
    ? `This ${stage} run trains ${m.file?.name ?? m.label}, a file from your disk: after a reload the page cannot open it by itself. Pick the same file again to go on from step ${step}.`
    : `This ${stage} run trains ${m?.label ?? 'a model'} from files on your disk: choose the same model again in Models, then Resume goes on from step ${step}.`;
}

/** A picked file that is not the run's. */
export function wrongFile(want: RunModel, files: readonly File[]): UserMessage {
  const bytes = (n: number) => `${n.toLocaleString('en-US')} bytes`;
  return {
    code: 'BAD_ARGUMENT',
    title: 'This is not the file the run trained on',
    message: `The run trains ${want.file?.name ?? want.label} (${bytes(want.file?.size ?? 0)}); you picked ${files
      .map((x) => `${x.name} (${bytes(x.size)})`)
      .join(', ')}. Pick the same file.`,
  };
}

/** The plan of the next run as the planner worker made it (latest request wins). */
export class TrainPlanState {
  phase = $state<'idle' | 'planning'>('idle');
  student = $state.raw<TrainStudent | null>(null);
  plan = $state.raw<TrainPlanView | null>(null);
  data = $state.raw<DataCheck | null>(null);
  /** No example left to train on, and why. */
  problem = $state<string | null>(null);
  /** What the plan does not count for this stage. */
  note = $state<string | null>(null);
  /** The student could not be opened or the request was malformed. */
  error = $state.raw<UserMessage | null>(null);
  /** A run would be refused as the settings are now. */
  refused = $derived(this.plan?.verdict === 'refused' || this.problem !== null);
  private last = 0;
  private queue: Promise<unknown> = Promise.resolve();

  /** The planner worker's answer for `req` on `src` (one request at a time, in order). */
  check(src: StudentSource, req: TrainPlanRequest): Promise<TrainPlanResult> {
    const go = () => planNextRun(src, req);
    const p = this.queue.then(go, go);
    this.queue = p.catch(() => {});
    return p;
  }

  /** A new request: its id (only the latest one's answer is shown). */
  begin(): number {
    this.phase = 'planning';
    return ++this.last;
  }

  /** The answer to request `id`, if it is still the latest. */
  done(id: number, r: TrainPlanResult): boolean {
    if (id !== this.last) return false;
    this.student = r.student;
    this.plan = r.plan;
    this.data = r.data;
    this.problem = r.problem;
    this.note = r.note;
    this.error = null;
    this.phase = 'idle';
    return true;
  }

  fail(id: number, e: unknown): void {
    if (id !== this.last) return;
    this.error = describeError(e);
    this.plan = null;
    this.problem = null;
    this.phase = 'idle';
  }

  /** Forgets a request in flight (a run started). */
  drop(): void {
    this.last++;
    this.phase = 'idle';
  }
}
