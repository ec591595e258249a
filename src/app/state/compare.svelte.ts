/**
 * Display state of Compare: the held-out problems of the built-in world (the split `d2g repro`
 * uses), the students to evaluate (adapter sets + base), their greedy accuracy with 95% intervals,
 * the paper's Table 1 as a Venn diagram of the D_pos, D_neg and NAT students, the NCE token-KL heat
 * map over a correct teacher rationale, and the full CLI run's figures when the app ships them.
 * The GPU work runs in the evaluator worker (src/method/api/evaluator.ts); results are latest-wins.
 */
import type { GpuInfo } from '../../engine/gpu/device.ts';
import type { StudentModelInfo } from '../../method/api/runtime.ts';
import type {
  EvalEngine,
  EvalProgress,
  EvalResult,
  EvalSet,
  KlMap,
  Table1,
} from '../../method/api/evaluator.ts';
import { heldOutSplit } from '../../method/datasets/split.ts';
import type { Problem } from '../../method/datasets/formats.ts';
import type { ReproResult } from '../../method/experiments/repro.ts';
import evaluatorWorkerUrl from '../../../workers/evaluator.worker.ts?worker&url';
import { Comlink, data, publicUrl, workerFor } from '../engine-client.ts';
import {
  adapterFiles,
  builtinReproPath,
  listAdapterSets,
  type AdapterSetMeta,
} from '../lib/adapters-store.ts';
import { describeError, type UserMessage } from '../lib/errors.ts';
import { studentModel, type ModelChoice } from './student-model.svelte.ts';

export type ComparePhase = 'starting' | 'ready' | 'running' | 'done' | 'cancelled' | 'error';

/** The base model as a pseudo adapter set (no files). */
export const BASE_ID = 'base';
/** The world questions generated (seed 1, as Explore); about a fifth of them are held out. */
export const WORLD_N = 1000;
/** The split `d2g repro` uses. */
export const HELD_OUT = { fraction: 0.2, seed: 0 } as const;
export const REPRO_JSON = 'models/adapters/repro.json';
export const N_CHOICES = [8, 16, 32, 64, 128, 200] as const;

/** A student the view can evaluate: an adapter set with a student LoRA, or the base model. */
export interface StudentOption {
  id: string;
  name: string;
  stage: string;
}

export class CompareState {
  phase = $state<ComparePhase>('starting');
  /** What the status line says while starting. */
  startStep = $state('Opening the GPU…');
  gpu = $state.raw<GpuInfo | null>(null);
  model = $state.raw<StudentModelInfo | null>(null);
  error = $state.raw<UserMessage | null>(null);

  heldOut = $state.raw<Problem[]>([]);
  students = $state.raw<StudentOption[]>([]);
  /** Ids of the students to evaluate. */
  picked = $state<string[]>([]);
  vennPos = $state('');
  vennNeg = $state('');
  vennNat = $state('');
  n = $state(64);
  maxNew = $state(96);
  batch = $state(16);

  progress = $state.raw<EvalProgress | null>(null);
  /** Seconds left, known after the first batch. */
  etaSeconds = $state<number | null>(null);
  /** Seconds per (student, problem) of the last run: the estimate before the next one starts. */
  secondsPerItem = $state<number | null>(null);
  result = $state.raw<EvalResult | null>(null);
  /** The problems of `result`, in its order. */
  evaluated = $state.raw<Problem[]>([]);
  table1 = $state.raw<Table1 | null>(null);
  /** Names of the Venn's three students in `table1`. */
  vennNames = $state.raw<{ pos: string; neg: string; nat: string } | null>(null);

  /** Held-out problems with a correct teacher rationale (the heat map's choices), by index into heldOut. */
  heatChoices = $derived(
    this.heldOut.flatMap((p, i) => (p.rationales.some((r) => r.correct) ? [i] : [])).slice(0, 200),
  );
  heatProblem = $state(0);
  heatRationale = $state(0);
  heat = $state.raw<KlMap | null>(null);
  heatPhase = $state<'idle' | 'running' | 'ready' | 'error'>('idle');
  heatError = $state.raw<UserMessage | null>(null);

  repro = $state.raw<ReproResult | null>(null);

  private engine: Comlink.Remote<EvalEngine> | null = null;
  private loadedSource: ModelChoice | null = null;
  private started = false;
  private runId = 0;
  private heatId = 0;

  nat = $derived(this.students.find((s) => s.id === this.vennNat) ?? null);
  problemCount = $derived(Math.min(this.n, this.heldOut.length));
  /** Work items (students × problems) of the next run. */
  items = $derived(this.runIds().length * this.problemCount);

  /** First visit: the GPU, the model, the sets, the held-out problems, the CLI figures. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    void this.loadRepro();
    try {
      this.phase = 'starting';
      this.startStep = 'Opening the GPU…';
      // `?worker&url`: Vite bundles the worker and gives its URL (a bare `new URL(…)` outside
      // `new Worker(…)` would be taken for a plain asset)
      this.engine ??= Comlink.wrap<EvalEngine>(
        // eslint-disable-next-line svelte/prefer-svelte-reactivity
        workerFor('evaluator', new URL(evaluatorWorkerUrl, location.href)),
      );
      this.gpu = await this.engine.init();
      this.startStep = 'Loading the student model…';
      await this.ensureModel();
      this.startStep = 'Listing the students and the held-out problems…';
      await Promise.all([this.loadStudents(), this.loadProblems()]);
      this.phase = 'ready';
    } catch (e) {
      this.started = false; // a later visit tries again
      this.fail(e);
      return;
    }
    void this.showHeat();
  }

  /** Evaluates every picked student (and the Venn's three) on the first `n` held-out problems. */
  async run(): Promise<void> {
    if (!this.engine || this.phase === 'running' || this.phase === 'starting') return;
    const id = ++this.runId;
    const engine = this.engine;
    this.phase = 'running';
    this.error = null;
    this.progress = null;
    this.etaSeconds = null;
    const problems = this.heldOut.slice(0, this.problemCount);
    try {
      await this.ensureModel();
      const ids = this.runIds();
      const sets: EvalSet[] = [];
      for (const sid of ids) {
        const s = this.students.find((x) => x.id === sid)!;
        sets.push({ id: s.id, name: s.name, files: sid === BASE_ID ? {} : await adapterFiles(sid) });
      }
      const onProgress = Comlink.proxy((p: EvalProgress) => {
        if (id !== this.runId) return;
        this.progress = p;
        // after the first batch, the rate of this run says how long the rest takes
        if (p.fraction > 0 && p.fraction < 1)
          this.etaSeconds = ((p.elapsedMs / p.fraction) * (1 - p.fraction)) / 1000;
      });
      const r = await engine.evaluate(
        {
          sets,
          problems: problems.map((p) => ({ question: p.question, gold: p.goldAnswer, kind: 'arith' })),
          maxNew: this.maxNew,
          batch: this.batch,
        },
        onProgress,
      );
      if (id !== this.runId) return;
      this.result = r;
      this.evaluated = problems;
      const done = r.sets.length * problems.length;
      if (done > 0) this.secondsPerItem = r.seconds / done;
      await this.updateVenn();
      this.phase = r.cancelled ? 'cancelled' : 'done';
    } catch (e) {
      if (id === this.runId) this.fail(e);
    }
  }

  cancel(): void {
    void this.engine?.cancel();
  }

  toggle(id: string, on: boolean): void {
    const rest = this.picked.filter((x) => x !== id);
    this.picked = on ? [...rest, id] : rest;
  }

  /** Table 1 again for other Venn picks, when those students were in the last run. */
  async updateVenn(): Promise<void> {
    const r = this.result;
    const get = (sid: string) => r?.sets.find((s) => s.id === sid) ?? null;
    const [P, N, A] = [get(this.vennPos), get(this.vennNeg), get(this.vennNat)];
    if (!this.engine || !P || !N || !A) {
      this.table1 = null;
      this.vennNames = null;
      return;
    }
    this.table1 = await this.engine.table1(P.solved, N.solved, A.solved);
    this.vennNames = { pos: P.name, neg: N.name, nat: A.name };
  }

  /** The heat map of the chosen problem's chosen correct rationale under the Venn's NAT set. */
  async showHeat(): Promise<void> {
    const p = this.heldOut[this.heatProblem];
    const rationale = p?.rationales.filter((r) => r.correct)[this.heatRationale];
    if (!this.engine || !p || !rationale || !this.vennNat) return;
    const id = ++this.heatId;
    this.heatPhase = 'running';
    this.heatError = null;
    try {
      const natFiles = this.vennNat === BASE_ID ? {} : await adapterFiles(this.vennNat);
      await this.ensureModel();
      const m = await this.engine.klMap({ natFiles, question: p.question, rationale: rationale.text });
      if (id !== this.heatId) return;
      this.heat = m;
      this.heatPhase = 'ready';
    } catch (e) {
      if (id !== this.heatId) return;
      this.heat = null;
      this.heatError = describeError(e);
      this.heatPhase = 'error';
    }
  }

  pickHeatProblem(index: number): void {
    this.heatProblem = index;
    this.heatRationale = 0;
    void this.showHeat();
  }

  /** The students of the next run: the picked ones and the Venn's three, in list order. */
  private runIds(): string[] {
    const want = [...this.picked, this.vennPos, this.vennNeg, this.vennNat];
    return this.students.map((s) => s.id).filter((id) => want.includes(id));
  }

  private async ensureModel(): Promise<void> {
    const src = studentModel.source;
    if (this.loadedSource === src || !this.engine) return;
    this.model = await this.engine.load({
      ...(src.modelUrl ? { modelUrl: src.modelUrl } : {}),
      ...(src.tokenizerUrl ? { tokenizerUrl: src.tokenizerUrl } : {}),
      ...(src.modelBytes ? { modelBytes: src.modelBytes } : {}),
      ...(src.tokenizerJson !== undefined ? { tokenizerJson: src.tokenizerJson } : {}),
      name: src.name,
    });
    this.loadedSource = src;
  }

  private async loadStudents(): Promise<void> {
    const sets: AdapterSetMeta[] = await listAdapterSets();
    const students: StudentOption[] = [
      { id: BASE_ID, name: 'Base model (no adapters)', stage: 'base' },
      ...sets
        .filter((s) => s.files.includes('lora.safetensors'))
        .map((s) => ({ id: s.id, name: s.name, stage: s.stage })),
    ];
    this.students = students;
    const first = (stage: string) =>
      sets.find((s) => s.stage === stage && s.source === 'builtin')?.id ??
      sets.find((s) => s.stage === stage)?.id ??
      '';
    this.vennPos ||= first('kd');
    this.vennNeg ||= first('neg');
    this.vennNat ||= first('nat');
    if (this.picked.length === 0)
      this.picked = [
        BASE_ID,
        ...sets
          .filter((s) => s.source === 'builtin' && s.files.includes('lora.safetensors'))
          .map((s) => s.id),
      ];
  }

  private async loadProblems(): Promise<void> {
    const { dataset } = await data().builtin('world', publicUrl(''), { n: WORLD_N, seed: 1 });
    this.heldOut = heldOutSplit(dataset, HELD_OUT).heldOut.problems;
    this.heatProblem = this.heatChoices[0] ?? 0;
  }

  /** The full CLI run's figures, when the app ships them (a missing file is not an error). */
  private async loadRepro(): Promise<void> {
    try {
      // only when the built-in index says a run ships: no 404 in the console on a static host
      const path = await builtinReproPath();
      if (path !== REPRO_JSON) return;
      const res = await fetch(publicUrl(path));
      if (!res.ok || !(res.headers.get('content-type') ?? '').includes('json')) return;
      const j = (await res.json()) as ReproResult;
      if (j && typeof j.n === 'number' && j.table1 && j.table2) this.repro = j;
    } catch {
      // not shipped (or not JSON): Compare shows its own runs only
    }
  }

  private fail(e: unknown): void {
    this.error = describeError(e);
    this.phase = 'error';
  }
}

export const compare = new CompareState();
