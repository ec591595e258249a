/**
 * Display state of Compare: the student chosen in Models (the built-in one, our safetensors model,
 * or a big one: a GGUF file or URL, web-llm's MLC build), the problems (the built-in world's
 * held-out split `d2g repro` uses, and GSM8K / MATH-500 for a tokenizer that reads them), the
 * students to evaluate (base + the adapter sets made for that model), their greedy accuracy with
 * 95% intervals, the paper's Table 1 as a Venn diagram of the D_pos, D_neg and NAT students, the
 * NCE token-KL heat map over a correct rationale, and the full CLI run's figures when the app ships
 * them. The GPU work runs in the evaluator worker (src/method/api/evaluator.ts); results are
 * latest-wins.
 *
 * A big student is loaded into the evaluator worker through the same runtime as Solve's, planned
 * for `batch` sequences × Solve's context. That is a second copy of the weights next to the one
 * Solve's worker holds, so nothing is loaded until the user says how: free Solve's copy first (the
 * copy then moves with the view: Compare frees it when it is left, Solve loads it again when it is
 * next shown), or keep both when the plan says both fit the memory budget.
 */
import type { GpuInfo } from '../../engine/gpu/device.ts';
import type { AnswerKind } from '../../method/answers/index.ts';
import type {
  GgufInspection,
  LoadProgress,
  MlcInspection,
  PlanView,
  StudentModelInfo,
  StudentSource,
} from '../../method/api/runtime.ts';
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
import type { ReproResult } from '../../method/experiments/result.ts';
import evaluatorWorkerUrl from '../../../workers/evaluator.worker.ts?worker&url';
import { Comlink, data, inference, publicUrl, workerFor } from '../engine-client.ts';
import {
  adapterFiles,
  builtinReproPath,
  listAdapterSets,
  type AdapterSetMeta,
} from '../lib/adapters-store.ts';
import { describeError, type UserMessage } from '../lib/errors.ts';
import { studentModel, type ModelChoice } from './student-model.svelte.ts';

export type ComparePhase =
  | 'starting'
  /** A big student waits for the user: free Solve's copy, or load a second one. */
  | 'model'
  /** A big student is loading into the evaluator worker. */
  | 'loading'
  | 'ready'
  | 'running'
  | 'done'
  | 'cancelled'
  | 'error';

/** The base model as a pseudo adapter set (no files). */
export const BASE_ID = 'base';
/** The world questions generated (seed 1, as Explore); about a fifth of them are held out. */
export const WORLD_N = 1000;
/** The split `d2g repro` uses. */
export const HELD_OUT = { fraction: 0.2, seed: 0 } as const;
export const REPRO_JSON = 'models/adapters/repro.json';
export const N_CHOICES = [8, 16, 32, 64, 128, 200] as const;
/** Sequences decoded together (repro's batch), and the most a big student is planned for. */
export const DEFAULT_BATCH = 16;
export const MAX_BATCH = 32;
/** Characters GSM8K and MATH-500 need beyond the world's: a tokenizer that reads them is offered both. */
export const MATH_CHARS = '$%\\';

export type ProblemSetId = 'world' | 'gsm8k' | 'math500';

/** The problem sets Compare evaluates on: the held-out world, and two real ones for a big tokenizer. */
export const PROBLEM_SETS: readonly { id: ProblemSetId; title: string; kind: AnswerKind; note: string }[] = [
  {
    id: 'world',
    title: 'Arithmetic world (held out)',
    kind: 'arith',
    note: 'held-out questions of the arithmetic world (the split `d2g repro` uses)',
  },
  { id: 'gsm8k', title: 'GSM8K', kind: 'gsm8k', note: 'GSM8K test questions (answers checked as GSM8K)' },
  {
    id: 'math500',
    title: 'MATH-500',
    kind: 'math',
    note: 'MATH-500 problems (answers checked as MATH: the last \\boxed{})',
  },
];

/** A student the view can evaluate: an adapter set with a student LoRA, or the base model. */
export interface StudentOption {
  id: string;
  name: string;
  stage: string;
}

/** The Venn's three roles, the stage whose set fills each by default, and how to name them. */
export const VENN_ROLES = [
  { key: 'vennPos', stage: 'kd', what: 'the D_pos model (a KD set)' },
  { key: 'vennNeg', stage: 'neg', what: 'the D_neg model (a NEG set)' },
  { key: 'vennNat', stage: 'nat', what: 'NAT (a NAT set)' },
] as const;

/** A GGUF or MLC choice: planned before it is loaded. */
export function isBigChoice(c: Pick<ModelChoice, 'gguf' | 'ggufUrl' | 'mlcUrl'>): boolean {
  return c.gguf !== undefined || c.ggufUrl !== undefined || c.mlcUrl !== undefined;
}

/** The same model: the same object, or big choices with the same key (Models' name for a pick). */
function sameChoice(a: ModelChoice | null, b: ModelChoice): boolean {
  return a === b || (a !== null && isBigChoice(b) && b.key !== undefined && a.key === b.key);
}

/** What the big-student card shows before anything is loaded here. */
export interface BigStudentView {
  choice: ModelChoice;
  seen: GgufInspection | MlcInspection;
  /** Solve's copy in the inference worker (its name and what its plan counts), when it holds this model. */
  solveCopy: { name: string; bytes: number } | null;
}

export class CompareState {
  phase = $state<ComparePhase>('starting');
  /** What the status line says while starting. */
  startStep = $state('Opening the GPU…');
  gpu = $state.raw<GpuInfo | null>(null);
  model = $state.raw<StudentModelInfo | null>(null);
  error = $state.raw<UserMessage | null>(null);

  /** A big student waiting to be loaded here: its plan, and Solve's copy. */
  big = $state.raw<BigStudentView | null>(null);
  /** Positions per sequence a big student is planned for here (Solve's context by default). */
  context = $state(512);
  /** Reading the plan again (after batch / context changed). */
  planning = $state(false);
  loadProgress = $state.raw<LoadProgress | null>(null);
  /** A note about the model's copies (freed, moved back, …). */
  modelNote = $state('');
  /** Compare freed Solve's copy: its own copy goes when the view is left (one copy at a time). */
  moved = $state(false);

  /** The held-out world problems (the heat map's default source too). */
  heldOut = $state.raw<Problem[]>([]);
  problemSet = $state<ProblemSetId>('world');
  /** The problems of `problemSet`, in order. */
  problems = $state.raw<Problem[]>([]);
  problemsLoading = $state(false);
  /** The model's tokenizer reads `$ % \`: GSM8K and MATH-500 are offered. */
  readsMath = $state(false);
  students = $state.raw<StudentOption[]>([]);
  /** Adapter sets there are, and how many were made for another model (not offered). */
  otherModelSets = $state(0);
  /** Ids of the students to evaluate. */
  picked = $state<string[]>([]);
  vennPos = $state('');
  vennNeg = $state('');
  vennNat = $state('');
  n = $state(64);
  maxNew = $state(96);
  batch = $state(DEFAULT_BATCH);

  progress = $state.raw<EvalProgress | null>(null);
  /** Seconds left, known after the first batch. */
  etaSeconds = $state<number | null>(null);
  /** Seconds per (student, problem) of the last run: the estimate before the next one starts. */
  secondsPerItem = $state<number | null>(null);
  result = $state.raw<EvalResult | null>(null);
  /** The problems of `result`, in its order, and how their answers were checked. */
  evaluated = $state.raw<Problem[]>([]);
  resultKind = $state<AnswerKind>('arith');
  table1 = $state.raw<Table1 | null>(null);
  /** Names of the Venn's three students in `table1`. */
  vennNames = $state.raw<{ pos: string; neg: string; nat: string } | null>(null);

  /** Problems with a correct teacher rationale (the heat map's choices), by index into `problems`. */
  heatChoices = $derived(
    this.problems.flatMap((p, i) => (p.rationales.some((r) => r.correct) ? [i] : [])).slice(0, 200),
  );
  heatProblem = $state(0);
  heatRationale = $state(0);
  heat = $state.raw<KlMap | null>(null);
  heatPhase = $state<'idle' | 'running' | 'ready' | 'error'>('idle');
  heatError = $state.raw<UserMessage | null>(null);

  repro = $state.raw<ReproResult | null>(null);

  private engine: Comlink.Remote<EvalEngine> | null = null;
  private loadedSource: ModelChoice | null = null;
  /** The choice last readied (loaded, or its card shown): results stay while it is the same model. */
  private lastChoice: ModelChoice | null = null;
  private started = false;
  private visible = false;
  private runId = 0;
  private heatId = 0;
  private prepareId = 0;
  private running: Promise<void> = Promise.resolve();
  /** Each problem set read once (not shown: no reactivity needed). */
  // eslint-disable-next-line svelte/prefer-svelte-reactivity
  private problemCache = new Map<ProblemSetId, Promise<Problem[]>>();

  nat = $derived(this.students.find((s) => s.id === this.vennNat) ?? null);
  problemCount = $derived(Math.min(this.n, this.problems.length));
  /** Work items (students × problems) of the next run. */
  items = $derived(this.runIds().length * this.problemCount);
  /** The model's name as the lists say it. */
  modelName = $derived(this.model?.name ?? studentModel.source.name);
  /**
   * The Venn's roles that nothing fills: not picked, and no set of the role's stage was made for the
   * model (the diagram and Table 1 need all three).
   */
  vennMissing = $derived(
    VENN_ROLES.filter(
      (r) =>
        !this.students.some((s) => s.id === this[r.key]) && !this.students.some((s) => s.stage === r.stage),
    ).map((r) => r.what),
  );
  kind = $derived<AnswerKind>(PROBLEM_SETS.find((p) => p.id === this.problemSet)?.kind ?? 'arith');

  /** First visit: the GPU, the model (or the big-student card), the sets, the problems, the CLI figures. */
  async start(): Promise<void> {
    this.visible = true;
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
    } catch (e) {
      this.started = false; // a later visit tries again
      this.fail(e);
      return;
    }
    await this.prepare(studentModel.source);
  }

  /** The view is left: a copy Compare moved here from Solve goes (Solve loads it when shown). */
  leave(): void {
    this.visible = false;
    if (this.phase === 'loading' && this.moved) void this.engine?.cancelLoad();
    else if (this.phase !== 'running') void this.freeMoved();
  }

  /** Follows the model chosen in Models (the view calls it when `studentModel.source` changes). */
  async useModel(choice: ModelChoice): Promise<void> {
    this.visible = true;
    if (!this.started || !this.gpu) return; // start() readies the model once the GPU is open
    if (sameChoice(this.loadedSource, choice) && this.phase !== 'model' && this.phase !== 'error') return;
    if (this.phase === 'running') {
      this.cancel();
      await this.running;
    }
    if (this.phase === 'loading') return; // the load in flight ends first; run() checks again
    await this.prepare(choice);
  }

  /**
   * Readies `choice`: our own model is loaded at once; a big one shows the card (its plan here
   * and Solve's copy) unless this worker holds it already.
   */
  private async prepare(choice: ModelChoice): Promise<void> {
    const id = ++this.prepareId;
    const engine = this.engine;
    if (!engine) return;
    this.error = null;
    this.big = null;
    try {
      if (!sameChoice(this.loadedSource, choice) && !sameChoice(this.lastChoice, choice)) {
        this.clearResults();
        this.modelNote = '';
      }
      this.lastChoice = choice;
      if (isBigChoice(choice)) {
        const held = await engine.modelInfo;
        if (id !== this.prepareId) return;
        if (!(held && held.key !== undefined && held.key === choice.key)) {
          this.phase = 'starting';
          this.startStep = `Planning ${choice.label} for Compare…`;
          this.loadedSource = null;
          this.model = null;
          await this.planBig(choice, id);
          return;
        }
        this.model = held;
      } else {
        this.phase = 'starting';
        this.startStep = 'Loading the student model…';
        this.model = await engine.load(ourSource(choice));
        this.moved = false;
      }
      if (id !== this.prepareId) return;
      this.loadedSource = choice;
      await this.afterLoad(id);
    } catch (e) {
      if (id === this.prepareId) this.fail(e);
    }
  }

  /** The big student's plan for this worker (batch × context), and what Solve's worker holds of it. */
  private async planBig(choice: ModelChoice, id: number): Promise<void> {
    const engine = this.engine!;
    // Solve's context, or the planner's default when Models planned none
    const seen = await engine.inspect(this.bigSource(choice, choice.plan?.context ?? null));
    const held = await inference()
      .solver.modelInfo()
      .catch(() => null);
    if (id !== this.prepareId) return;
    const heldPlan = held?.gguf?.plan ?? held?.mlc?.plan;
    this.big = {
      choice,
      seen,
      solveCopy:
        held && held.key !== undefined && held.key === choice.key
          ? { name: held.name, bytes: heldPlan?.items.total ?? seen.plan.items.weights }
          : null,
    };
    this.batch = seen.plan.sequences;
    this.context = seen.plan.context;
    this.phase = 'model';
  }

  /** Plans again with the batch and context as set (the card's inputs and the planner's suggestions). */
  async replan(): Promise<void> {
    const b = this.big;
    if (!b || this.phase !== 'model') return;
    const id = ++this.prepareId;
    this.planning = true;
    this.error = null;
    try {
      const seen = await this.engine!.inspect(this.bigSource(b.choice));
      if (id !== this.prepareId) return;
      this.big = { ...b, seen };
      this.batch = seen.plan.sequences;
      this.context = seen.plan.context;
    } catch (e) {
      if (id === this.prepareId) this.error = describeError(e);
    } finally {
      if (id === this.prepareId) this.planning = false;
    }
  }

  /** Takes one of the planner's suggestions (a smaller batch, a shorter context) and plans again. */
  async applySuggestion(s: PlanView['suggestions'][number]): Promise<void> {
    if (s.sequences !== undefined) this.batch = s.sequences;
    if (s.context !== undefined) this.context = s.context;
    await this.replan();
  }

  /**
   * The second copy's verdict: Solve's copy (as planned) plus this one against the budget; null when
   * Solve holds none.
   */
  secondCopy(): { total: number; budget: number; fits: boolean } | null {
    const b = this.big;
    if (!b?.solveCopy) return null;
    const total = b.solveCopy.bytes + b.seen.plan.items.total;
    return { total, budget: b.seen.plan.budget, fits: total <= b.seen.plan.budget };
  }

  /**
   * Loads the big student here, with progress and Cancel. `freeSolve`: Solve's copy is freed first
   * (Solve loads it again when it is next shown) and this one goes when Compare is left.
   */
  async loadBig(freeSolve: boolean): Promise<void> {
    const b = this.big;
    const engine = this.engine;
    if (!b || !engine || this.phase !== 'model' || b.seen.plan.verdict !== 'ok') return;
    const id = ++this.prepareId;
    this.error = null;
    this.modelNote = '';
    let choice = b.choice;
    if (freeSolve && b.solveCopy) {
      try {
        await inference().solver.unload();
      } catch (e) {
        this.error = describeError(e); // e.g. Solve is sampling: the card stays
        return;
      }
      // Solve holds nothing now: the same choice again makes Solve load it when it is next shown
      studentModel.choose(choice);
      choice = studentModel.source;
      this.big = { ...b, choice, solveCopy: null };
      this.moved = true;
      this.modelNote = `Solve's copy of ${choice.label} was freed. Compare gives its own copy up when you leave Compare, and Solve loads the model again when it is next shown.`;
    } else this.moved = false;
    try {
      this.phase = 'loading';
      this.loadProgress = { bytesDone: 0, bytesTotal: b.seen.facts.dataBytes, tensor: '' };
      const info = await engine.load(
        this.bigSource(choice),
        Comlink.proxy((p: LoadProgress) => {
          if (id === this.prepareId) this.loadProgress = p;
        }),
      );
      if (id !== this.prepareId) return;
      this.model = info;
      this.loadedSource = choice;
      this.big = null;
      await this.afterLoad(id);
      if (!this.visible) void this.freeMoved();
    } catch (e) {
      if (id !== this.prepareId) return;
      // the card stays, with what happened: nothing of this load is left on the GPU
      if ((e as Error | null)?.name === 'AbortError')
        this.modelNote = `Cancelled: nothing of ${choice.label} stays in Compare's worker.`;
      else this.error = describeError(e);
      this.moved = false;
      this.phase = 'model';
    } finally {
      if (id === this.prepareId) this.loadProgress = null;
    }
  }

  cancelLoad(): void {
    void this.engine?.cancelLoad();
  }

  /** Frees Compare's copy of a big student it moved here from Solve. */
  async freeMoved(): Promise<void> {
    if (!this.moved || !this.engine || !this.loadedSource) return;
    const label = this.loadedSource.label;
    this.moved = false;
    this.loadedSource = null;
    this.model = null;
    this.prepareId++;
    await this.engine.unload().catch(() => {});
    this.phase = 'starting';
    this.startStep = 'Compare gave its copy of the model back.';
    this.modelNote = `Compare freed its copy of ${label} when you left it, so that Solve can hold one.`;
    if (this.visible) await this.prepare(studentModel.source);
  }

  /** Evaluates every picked student (and the Venn's three) on the first `n` problems of the set. */
  run(): Promise<void> {
    if (!this.engine || this.phase === 'running' || this.phase === 'starting') return this.running;
    if (this.phase === 'model' || this.phase === 'loading') return this.running;
    if (!sameChoice(this.loadedSource, studentModel.source)) {
      void this.prepare(studentModel.source);
      return this.running;
    }
    this.running = this.runOnce();
    return this.running;
  }

  private async runOnce(): Promise<void> {
    const engine = this.engine!;
    const id = ++this.runId;
    this.phase = 'running';
    this.error = null;
    this.progress = null;
    this.etaSeconds = null;
    const problems = this.problems.slice(0, this.problemCount);
    const kind = this.kind;
    try {
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
          problems: problems.map((p) => ({ question: p.question, gold: p.goldAnswer, kind })),
          maxNew: this.maxNew,
          batch: Math.min(this.batch, this.model?.limits?.sequences ?? this.batch),
        },
        onProgress,
      );
      if (id !== this.runId) return;
      this.result = r;
      this.evaluated = problems;
      this.resultKind = kind;
      const done = r.sets.length * problems.length;
      if (done > 0) this.secondsPerItem = r.seconds / done;
      await this.updateVenn();
      this.phase = r.cancelled ? 'cancelled' : 'done';
    } catch (e) {
      if (id === this.runId) this.fail(e);
    }
    if (!this.visible) void this.freeMoved();
  }

  cancel(): void {
    void this.engine?.cancel();
  }

  toggle(id: string, on: boolean): void {
    const rest = this.picked.filter((x) => x !== id);
    this.picked = on ? [...rest, id] : rest;
  }

  /** Another problem set: its problems (cached), the heat map's choices follow; false if they failed to load. */
  async chooseProblemSet(id: ProblemSetId): Promise<boolean> {
    this.problemSet = id;
    this.problemsLoading = true;
    try {
      const list = await this.problemsOf(id);
      if (this.problemSet !== id) return true;
      this.problems = list;
      this.heatProblem = this.heatChoices[0] ?? 0;
      this.heatRationale = 0;
      this.heat = null;
      this.heatPhase = 'idle';
      this.heatError = null;
    } catch (e) {
      if (this.problemSet === id) this.fail(e);
      return false;
    } finally {
      if (this.problemSet === id) this.problemsLoading = false;
    }
    void this.showHeat();
    return true;
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
    const p = this.problems[this.heatProblem];
    const rationale = p?.rationales.filter((r) => r.correct)[this.heatRationale];
    if (!this.engine || !p || !rationale || !this.nat || !this.loadedSource) {
      this.heat = null;
      this.heatPhase = 'idle';
      return;
    }
    const id = ++this.heatId;
    this.heatPhase = 'running';
    this.heatError = null;
    try {
      const natFiles = this.vennNat === BASE_ID ? {} : await adapterFiles(this.vennNat);
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

  /** A big choice as this worker's source: planned for the batch × context set here, Solve's budget. */
  private bigSource(c: ModelChoice, context: number | null = this.context): StudentSource {
    const budget = c.plan?.memoryBudget;
    return {
      ...(c.gguf !== undefined ? { gguf: c.gguf } : {}),
      ...(c.ggufUrl !== undefined ? { ggufUrl: c.ggufUrl } : {}),
      ...(c.mlcUrl !== undefined ? { mlcUrl: c.mlcUrl } : {}),
      ...(c.key !== undefined ? { key: c.key } : {}),
      name: c.name,
      plan: {
        sequences: Math.round(Number(this.batch)),
        ...(context !== null ? { context: Math.round(Number(context)) } : {}),
        ...(budget !== undefined ? { memoryBudget: budget } : {}),
      },
    };
  }

  /** Once a model is loaded here: the students made for it, the problem sets it reads, the problems. */
  private async afterLoad(id: number): Promise<void> {
    const engine = this.engine!;
    this.startStep = 'Listing the students and the problems…';
    this.phase = 'starting';
    const [readsMath] = await Promise.all([
      engine.unreadable(MATH_CHARS).then((bad) => bad.length === 0),
      this.loadStudents(),
      this.loadHeldOut(),
    ]);
    if (id !== this.prepareId) return;
    this.readsMath = readsMath;
    const set = readsMath || this.problemSet === 'world' ? this.problemSet : 'world';
    const listed = await this.chooseProblemSet(set);
    if (id !== this.prepareId || !listed) return;
    this.phase = 'ready';
  }

  /** Base plus the sets with a student LoRA made for the loaded model (as Solve offers them). */
  private async loadStudents(): Promise<void> {
    const engine = this.engine!;
    const model = this.model;
    const name = model?.name ?? '';
    const big = model?.format === 'gguf' || model?.format === 'mlc';
    const sets: AdapterSetMeta[] = await listAdapterSets();
    const withLora = sets.filter((s) => s.files.includes('lora.safetensors'));
    const offered: AdapterSetMeta[] = [];
    for (const s of withLora) {
      // a big model takes the sets made for it; our own models also those that fit by shape
      if (s.model === name) offered.push(s);
      else if (!big && (await engine.fits(await adapterFiles(s.id), s.name)) === null) offered.push(s);
    }
    this.otherModelSets = withLora.length - offered.length;
    this.students = [
      { id: BASE_ID, name: `Base model: ${name} (no adapters)`, stage: 'base' },
      ...offered.map((s) => ({ id: s.id, name: s.name, stage: s.stage })),
    ];
    const ids = this.students.map((s) => s.id);
    const first = (stage: string) =>
      offered.find((s) => s.stage === stage && s.source === 'builtin')?.id ??
      offered.find((s) => s.stage === stage)?.id ??
      '';
    for (const r of VENN_ROLES) if (!ids.includes(this[r.key])) this[r.key] = first(r.stage);
    const picked = this.picked.filter((x) => ids.includes(x));
    this.picked =
      picked.length > 0
        ? picked
        : [BASE_ID, ...offered.filter((s) => s.source === 'builtin').map((s) => s.id)];
  }

  private async loadHeldOut(): Promise<void> {
    if (this.heldOut.length === 0) this.heldOut = await this.problemsOf('world');
  }

  /** A problem set's problems: the world's held-out split, or the whole shipped file in order. */
  private problemsOf(id: ProblemSetId): Promise<Problem[]> {
    let p = this.problemCache.get(id);
    if (!p) {
      p =
        id === 'world'
          ? data()
              .builtin('world', publicUrl(''), { n: WORLD_N, seed: 1 })
              .then(({ dataset }) => heldOutSplit(dataset, HELD_OUT).heldOut.problems)
          : data()
              .builtin(id, publicUrl(''))
              .then(({ dataset }) => dataset.problems);
      p.catch(() => this.problemCache.delete(id));
      this.problemCache.set(id, p);
    }
    return p;
  }

  /** Results of another model: gone when the model changes (its students are others). */
  private clearResults(): void {
    this.students = [];
    this.result = null;
    this.evaluated = [];
    this.table1 = null;
    this.vennNames = null;
    this.heat = null;
    this.heatPhase = 'idle';
    this.heatError = null;
    this.secondsPerItem = null;
    this.progress = null;
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

/** Our own model's fields of a choice (the built-in student, or a safetensors model by URL or bytes). */
function ourSource(src: ModelChoice): StudentSource {
  return {
    ...(src.modelUrl ? { modelUrl: src.modelUrl } : {}),
    ...(src.tokenizerUrl ? { tokenizerUrl: src.tokenizerUrl } : {}),
    ...(src.modelBytes ? { modelBytes: src.modelBytes } : {}),
    ...(src.tokenizerJson !== undefined ? { tokenizerJson: src.tokenizerJson } : {}),
    name: src.name,
  };
}

export const compare = new CompareState();
