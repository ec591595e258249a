/**
 * Display state of Train: the data (the world's teacher dataset or a saved import, split into
 * D_pos / D_neg by our answer checking, questions held out by hash), the stage and its input
 * adapter set, the settings, and the live run in the trainer worker (loss, tokens/s, ETA, NAT α
 * per layer, NCE β, ranker pair accuracy) with pause / resume / cancel.
 *
 * Every `checkpointEvery` steps the worker hands over a checkpoint, stored with the run's record
 * in one IndexedDB transaction (runs-store.ts) before the next step. Opening Train finds a run that
 * was running when the page went away and resumes it from its checkpoint (a paused one waits for
 * Resume); a lost GPU device pauses the run, and Resume goes on from the checkpoint on a fresh
 * worker. A finished run's files become an adapter set (source 'trained') that Solve lists.
 *
 * The student is the one chosen in Models (the built-in one, our safetensors model, a GGUF LLaMA,
 * web-llm's MLC build): the trainer worker opens the same source (train-student.svelte.ts). Before
 * a run, the data is tokenized with the student's tokenizer and one LoRA step is planned against
 * the device and the memory budget (Models' field); a plan that does not fit is refused before a
 * run exists, with the planner's suggestions one click away. A set trained on a model is saved
 * under that model's name, and Solve offers it with that model.
 */
import type {
  InputShapes,
  TrainerEngine,
  TrainerEvent,
  TrainOutcome,
  TrainPlanRequest,
  TrainSuggestion,
} from '../../method/api/trainer.ts';
import type { LoadProgress, StudentSource } from '../../method/api/runtime.ts';
import type { LoraTarget } from '../../engine/model/llama.ts';
import type { Dataset } from '../../method/datasets/index.ts';
import { heldOutSplit, splitPosNeg } from '../../method/datasets/index.ts';
import { DEFAULT_STAGE, STAGE_INFO, type StageConfig, type StageName } from '../../method/stages/config.ts';
import type { StageCheckpoint, StageData } from '../../method/stages/types.ts';
import trainerWorkerUrl from '../../../workers/trainer.worker.ts?worker&url';
import { Comlink, data, endWorker, publicUrl, workerFor } from '../engine-client.ts';
import { adapterFiles, listAdapterSets, saveAdapterSet, type AdapterSetMeta } from '../lib/adapters-store.ts';
import { listDatasets, loadDataset, type DatasetRecord } from '../lib/db.ts';
import { describeError, type UserMessage } from '../lib/errors.ts';
import {
  createRun,
  deleteRun,
  endRun,
  listRuns,
  loadCheckpoint,
  newRunId,
  saveCheckpoint,
  setRunStatus,
  type RunDataSource,
  type RunModel,
  type RunRecord,
} from '../lib/runs-store.ts';
import { models } from './models.svelte.ts';
import { studentModel } from './student-model.svelte.ts';
import {
  budgetBytes,
  fileMatches,
  inputShapesOf,
  isBigChoice,
  needFileNotice,
  refusalOf,
  runModelOf,
  sourceOfRun,
  trainerSource,
  TrainPlanState,
  wrongFile,
} from './train-student.svelte.ts';

/** The stages in the order the picker shows them, with short names. */
export const STAGE_CHOICES: readonly { id: StageName; label: string }[] = [
  { id: 'kd', label: 'KD' },
  { id: 'neg', label: 'Neg' },
  { id: 'nat', label: 'NAT' },
  { id: 'nce', label: 'NCE' },
  { id: 'rank', label: 'Ranker' },
  { id: 'mix', label: 'MIX' },
  { id: 'nt', label: 'NT' },
  { id: 'ul', label: 'UL' },
  { id: 'cl', label: 'CL' },
  { id: 'linmix', label: 'Linear mix' },
];
export { STAGE_INFO };

export const LORA_TARGETS: readonly LoraTarget[] = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'];

/** The built-in student's recipe (public/models/arith-student.md). */
export const RECIPE = { rank: 8, lr: 5e-3, batchSize: 16, steps: 350, seed: 1, checkpointEvery: 10 } as const;

/** The built-in student's name (runs stored before others could train have no `model`). */
const MODEL = 'arith-student';
const modelOfRun = (r: RunRecord): string => r.model?.name ?? MODEL;

/** Which earlier adapter set a stage builds on (same rule as the engine's `inputSetFor`). */
export function inputKind(stage: StageName): 'neg' | 'nat' | null {
  if (stage === 'nat' || stage === 'linmix') return 'neg';
  if (stage === 'nce') return 'nat';
  return null;
}

export type TrainPhase = 'idle' | 'starting' | 'running' | 'paused' | 'saving' | 'done' | 'error';

type TrainerClient = Comlink.Remote<TrainerEngine>;
let client: TrainerClient | null = null;
function trainer(): TrainerClient {
  client ??= Comlink.wrap<TrainerEngine>(workerFor('trainer', new URL(trainerWorkerUrl, location.href)));
  return client;
}
/** Ends the worker (its device with it): the next run starts a fresh one. */
function dropTrainer(): void {
  endWorker('trainer');
  client = null;
}

export interface DataCounts {
  name: string;
  questions: number;
  heldOut: number;
  pos: number;
  neg: number;
}

const labelOf = (s: StageName) => STAGE_CHOICES.find((c) => c.id === s)?.label ?? s;

export class TrainState {
  // ---- data
  datasets = $state.raw<DatasetRecord[]>([]);
  /** `world` or `saved:<id>`. */
  dataKey = $state('world');
  worldN = $state(500);
  worldSeed = $state(1);
  heldOutFraction = $state(0.1);
  dataPhase = $state<'idle' | 'loading' | 'ready' | 'error'>('idle');
  counts = $state.raw<DataCounts | null>(null);
  dataError = $state.raw<UserMessage | null>(null);
  private stageData: StageData | null = null;
  private dataFor = '';
  private dataRun = 0;

  // ---- stage and settings
  stage = $state<StageName>('kd');
  sets = $state.raw<AdapterSetMeta[]>([]);
  inputId = $state('');
  steps = $state<number>(RECIPE.steps);
  batchSize = $state<number>(RECIPE.batchSize);
  lr = $state<number>(RECIPE.lr);
  rank = $state<number>(RECIPE.rank);
  seed = $state<number>(RECIPE.seed);
  checkpointEvery = $state<number>(RECIPE.checkpointEvery);
  targets = $state<LoraTarget[]>([...LORA_TARGETS]);
  /** Sequences per micro-batch (gradient accumulation over the batch); null: the whole batch. */
  microBatch = $state<number | null>(null);
  /** Activation recompute: on by default for a big student (GGUF, MLC), off for ours. */
  recompute = $state(false);
  /** At most this many tokens per example (longer ones are left out); null: the model's context. */
  maxSeq = $state<number | null>(null);

  // ---- the student and the plan of the next run
  /** The plan of a run with the settings above, on the student in use. */
  readonly next = new TrainPlanState();
  /** The student a new run trains (Models' choice) or the shown run's. */
  modelName = $derived.by(() =>
    this.run && (this.busy || this.phase === 'paused') ? modelOfRun(this.run) : studentModel.source.name,
  );
  /** A run whose model is a file from the disk, after a reload: the file to pick again. */
  needFile = $state.raw<RunModel | null>(null);
  /** Start was pressed: the run's plan is being checked (no run exists yet). */
  checking = $state(false);
  /** A big model's weights loading in the trainer when its run starts. */
  loading = $state.raw<LoadProgress | null>(null);
  /** Files of runs in this page (a paused run goes on with them without asking again). */
  // eslint-disable-next-line svelte/prefer-svelte-reactivity -- looked up, never shown
  private runFiles = new Map<string, Blob>();
  private planFor: unknown = null;
  /** The frozen adapters' shapes of the input sets planned with, by stage and set (read once each). */
  // eslint-disable-next-line svelte/prefer-svelte-reactivity -- looked up, never shown
  private shapes = new Map<string, Promise<InputShapes>>();
  private choiceIds = new WeakMap<object, number>();
  private choices = 0;
  /** Everything the next run's plan depends on (TrainView plans again when it changes). */
  planKey = $derived.by(() => {
    const c = studentModel.source;
    let id = this.choiceIds.get(c);
    if (id === undefined) this.choiceIds.set(c, (id = ++this.choices));
    return JSON.stringify([
      id,
      this.stage,
      inputKind(this.stage) ? this.inputId : '',
      this.batchSize,
      this.microBatch,
      this.rank,
      this.targets,
      this.recompute,
      this.maxSeq,
      models.budget,
      this.dataPhase,
      this.counts,
      this.phase,
    ]);
  });

  inputChoices = $derived.by(() => {
    const need = inputKind(this.stage);
    return need ? this.sets.filter((s) => s.stage === need && s.model === this.modelName) : [];
  });
  trained = $derived(this.sets.filter((s) => s.source === 'trained'));

  // ---- the run
  run = $state.raw<RunRecord | null>(null);
  runs = $state.raw<RunRecord[]>([]);
  phase = $state<TrainPhase>('idle');
  /** The worker holds this run (pause / resume go to it); false for a run found after a reload. */
  live = $state(false);
  step = $state(0);
  totalSteps = $state(0);
  /** The step a resumed run went on from (its checkpoint), else 0. */
  resumedFrom = $state(0);
  /** The first step the worker reported in this page (resumedFrom + 1 when it resumed). */
  firstStep = $state(0);
  losses = $state.raw<number[]>([]);
  alphas = $state.raw<number[][]>([]);
  betas = $state.raw<number[][]>([]);
  pairAcc = $state.raw<number[]>([]);
  tokensPerSecond = $state(0);
  /** Seconds per step, a running mean over the steps after the first of this page. */
  secPerStep = $state(0);
  lastCheckpoint = $state(0);
  error = $state.raw<UserMessage | null>(null);
  notice = $state('');
  savedSet = $state.raw<AdapterSetMeta | null>(null);
  /** Files of a finished run whose adapter set could not be saved yet (quota): Save retries. */
  private pending: { run: RunRecord; outcome: TrainOutcome } | null = null;
  pendingSave = $state(false);

  eta = $derived(
    this.secPerStep > 0 && this.totalSteps > this.step ? (this.totalSteps - this.step) * this.secPerStep : 0,
  );
  busy = $derived(this.phase === 'starting' || this.phase === 'running' || this.phase === 'saving');

  private opened = false;
  private cancelAsked = false;
  private timedSteps = 0;
  private timedMs = 0;

  /** First visit: lists, then the run a reload interrupted (resumed if it was running). */
  async open(): Promise<void> {
    if (this.opened) return;
    this.opened = true;
    await this.refreshLists();
    const open = this.runs.find((r) => r.status === 'running' || r.status === 'paused');
    if (!open) {
      void this.loadData();
      return;
    }
    this.showRun(open);
    if (open.status === 'running') {
      this.notice = `The page was reloaded during the ${labelOf(open.stage)} run: it goes on from its last checkpoint (step ${open.step}).`;
      await this.resumeStored(open);
    } else {
      this.phase = 'paused';
      this.notice = `A paused ${labelOf(open.stage)} run (step ${open.step} of ${open.steps}) can go on from its last checkpoint.`;
      void this.loadData();
    }
  }

  async refreshLists(): Promise<void> {
    try {
      const [datasets, sets, runs] = await Promise.all([listDatasets(), listAdapterSets(), listRuns()]);
      this.datasets = datasets;
      this.sets = sets;
      this.runs = runs;
      this.pickInput();
    } catch (e) {
      this.error = describeError(e);
    }
  }

  setStage(s: StageName): void {
    this.stage = s;
    this.pickInput();
  }

  private pickInput(): void {
    const choices = this.inputChoices;
    if (!choices.some((c) => c.id === this.inputId)) this.inputId = choices[0]?.id ?? '';
  }

  toggleTarget(t: LoraTarget): void {
    this.targets = this.targets.includes(t)
      ? this.targets.filter((x) => x !== t)
      : LORA_TARGETS.filter((x) => x === t || this.targets.includes(x));
  }

  /** The recipe's settings back. */
  defaults(): void {
    this.steps = RECIPE.steps;
    this.batchSize = RECIPE.batchSize;
    this.lr = RECIPE.lr;
    this.rank = RECIPE.rank;
    this.seed = RECIPE.seed;
    this.checkpointEvery = RECIPE.checkpointEvery;
    this.targets = [...LORA_TARGETS];
    this.microBatch = null;
    this.maxSeq = null;
    this.recompute = isBigChoice(studentModel.source);
  }

  /** The stage settings of the form (what a new run gets). */
  private formConfig(): StageConfig {
    const rank = Math.max(1, Math.round(this.rank));
    const batchSize = Math.max(1, Math.round(this.batchSize));
    const micro = this.microBatch === null ? null : Math.max(1, Math.round(this.microBatch));
    return {
      ...DEFAULT_STAGE,
      steps: Math.max(1, Math.round(this.steps)),
      batchSize,
      ...(micro !== null && micro < batchSize ? { microBatch: micro } : {}),
      lr: this.lr,
      rank,
      alpha: 2 * rank,
      seed: Math.round(this.seed),
      targets: this.targets.length > 0 ? [...this.targets] : [...LORA_TARGETS],
      recompute: this.recompute,
    };
  }

  /** The cap as the trainer takes it (positions: an example of n tokens takes n − 1). */
  private capOf(): number | undefined {
    return this.maxSeq === null || !(this.maxSeq >= 2) ? undefined : Math.round(this.maxSeq) - 1;
  }

  /**
   * Plans the next run with the form's settings on the student in use (Models' choice): opens it
   * in the trainer worker (a big model's header only), tokenizes the data there and asks the
   * planner. Not while a run is going or paused. A new choice of student sets recompute's default.
   */
  async replan(): Promise<void> {
    if (!this.opened || this.busy || this.checking || this.phase === 'paused') return;
    const choice = studentModel.source;
    if (this.planFor !== choice) {
      this.planFor = choice;
      this.recompute = isBigChoice(choice);
    }
    if (this.dataPhase !== 'ready' || !this.stageData) return;
    const data = this.stageData;
    const id = this.next.begin();
    try {
      const req = await this.planRequest(this.formConfig(), data);
      this.next.done(id, await this.next.check(trainerSource(choice), req));
    } catch (e) {
      this.next.fail(id, e);
    }
  }

  private async planRequest(config: StageConfig, data: StageData): Promise<TrainPlanRequest> {
    const budget = budgetBytes(models.budget);
    const cap = this.capOf();
    const shapes = await this.inputShapes(this.stage, this.inputId);
    return {
      stage: this.stage,
      data,
      dataKey: this.dataFor,
      config,
      ...(cap !== undefined ? { maxSeq: cap } : {}),
      ...(budget !== undefined ? { memoryBudget: budget } : {}),
      ...(shapes ? { inputShapes: shapes } : {}),
    };
  }

  /**
   * The frozen adapters' shapes in the input set `id` for `stage` (rank, targets, the NAT unit's
   * width), so that the plan counts them as they are; none for a stage that builds on no set.
   */
  private inputShapes(stage: StageName, id: string): Promise<InputShapes | undefined> {
    if (!inputKind(stage) || !id) return Promise.resolve(undefined);
    const key = `${stage}|${id}`;
    let p = this.shapes.get(key);
    if (!p) {
      p = adapterFiles(id).then((files) => inputShapesOf(stage, files));
      // a set that could not be read is read again next time
      p.catch(() => this.shapes.delete(key));
      this.shapes.set(key, p);
    }
    return p;
  }

  /** One of the planner's suggestions, applied to the form (recompute, micro-batch, sequence cap). */
  async applySuggestion(s: TrainSuggestion): Promise<void> {
    if (s.kind === 'recompute') this.recompute = true;
    else if (s.kind === 'batch' && s.batch !== undefined) {
      // the planner's batch is sequences on one tape: the micro-batch (a pair is two for rank / CL)
      const per = this.stage === 'rank' || this.stage === 'cl' ? 2 : 1;
      this.microBatch = Math.max(1, Math.floor(s.batch / per));
    } else if (s.kind === 'seq' && s.seq !== undefined) this.maxSeq = s.seq + 1;
    else return;
    await this.replan();
  }

  /** The GPU memory budget in GiB as typed ('' = none, 4 GiB assumed): Models' field, shared. */
  get budget(): string {
    return models.budget;
  }

  /** Sets the budget (remembered for both views; Models plans its cards again too). */
  async setBudget(v: string): Promise<void> {
    await models.setBudget(v);
  }

  /** The file a run trained on, picked again after a reload: the run goes on with it. */
  async pickRunFile(files: readonly File[]): Promise<void> {
    const run = this.run;
    const want = this.needFile;
    const f = files[0];
    if (!run || !want || !f) return;
    if (files.length !== 1 || !fileMatches(want, f)) {
      this.error = wrongFile(want, files);
      return;
    }
    this.error = null;
    this.runFiles.set(run.id, f);
    this.needFile = null;
    await this.resume();
  }

  private source(): Omit<
    RunDataSource,
    'pos' | 'neg' | 'questions' | 'heldOut' | 'heldOutQuestions' | 'name'
  > {
    return this.dataKey === 'world'
      ? { key: 'world', n: this.worldN, seed: this.worldSeed }
      : { key: this.dataKey };
  }

  /** Loads the chosen data and splits it (latest call wins). */
  async loadData(): Promise<void> {
    const src = { ...this.source(), heldOut: { fraction: this.heldOutFraction, seed: 0 } };
    const run = ++this.dataRun;
    this.dataPhase = 'loading';
    this.dataError = null;
    try {
      const built = await buildData(src);
      if (run !== this.dataRun) return;
      this.stageData = built.data;
      this.dataFor = JSON.stringify(src);
      this.counts = built.counts;
      this.dataPhase = 'ready';
    } catch (e) {
      if (run !== this.dataRun) return;
      this.stageData = null;
      this.counts = null;
      this.dataError = describeError(e);
      this.dataPhase = 'error';
    }
  }

  /** Starts a new run with the chosen data, stage, input and settings. */
  async start(): Promise<void> {
    if (this.busy || this.checking || (this.run && this.phase === 'paused')) return;
    this.checking = true;
    let run: (() => Promise<void>) | null;
    try {
      run = await this.startChecked();
    } finally {
      this.checking = false;
    }
    await run?.();
  }

  /** Checks the data, the input set and the plan, stores the new run; returns what launches it, or null. */
  private async startChecked(): Promise<(() => Promise<void>) | null> {
    this.error = null;
    this.notice = '';
    this.savedSet = null;
    const src = { ...this.source(), heldOut: { fraction: this.heldOutFraction, seed: 0 } };
    if (this.dataPhase !== 'ready' || this.dataFor !== JSON.stringify(src)) await this.loadData();
    if (!this.stageData || !this.counts) return null;
    const need = inputKind(this.stage);
    const input = need ? this.sets.find((s) => s.id === this.inputId) : undefined;
    if (need && !input) {
      this.error = {
        code: 'BAD_ARGUMENT',
        title: 'This cannot be done with these settings',
        message:
          need === 'neg'
            ? `${labelOf(this.stage)} learns next to a frozen negative LoRA: pick a Neg adapter set (or train the Neg stage first).`
            : 'NCE distils the NAT model: pick a NAT adapter set (or train the NAT stage first).',
      };
      return null;
    }
    const config = this.formConfig();
    const choice = studentModel.source;
    const modelSrc = trainerSource(choice);
    const budget = budgetBytes(models.budget);
    const cap = this.capOf();
    // the plan first: a run that would not fit is never created (nothing stored, nothing allocated)
    const id = this.next.begin();
    try {
      const r = await this.next.check(modelSrc, await this.planRequest(config, this.stageData));
      this.next.done(id, r);
      this.planFor = choice;
      const refusal = refusalOf(
        r,
        ' Nothing was started: change the settings (the plan above offers what fits).',
      );
      if (refusal) {
        this.error = refusal;
        return null;
      }
    } catch (e) {
      this.next.fail(id, e);
      this.error = describeError(e);
      return null;
    }
    const now = Date.now();
    const run: RunRecord = {
      id: newRunId(),
      stage: this.stage,
      model: runModelOf(choice),
      ...(cap !== undefined ? { maxSeq: cap } : {}),
      ...(budget !== undefined ? { memoryBudget: budget } : {}),
      data: {
        ...src,
        name: this.counts.name,
        pos: this.counts.pos,
        neg: this.counts.neg,
        questions: this.counts.questions,
        heldOutQuestions: this.counts.heldOut,
      },
      input: input ? { id: input.id, name: input.name } : null,
      config,
      checkpointEvery: Math.max(0, Math.round(this.checkpointEvery)),
      status: 'running',
      createdAt: now,
      updatedAt: now,
      step: 0,
      steps: config.steps,
      losses: [],
      history: {},
    };
    try {
      await createRun(run);
    } catch (e) {
      this.error = describeError(e);
      return null;
    }
    if (choice.gguf) this.runFiles.set(run.id, choice.gguf);
    this.showRun(run);
    this.runs = [run, ...this.runs];
    const data = this.stageData;
    return () => this.launch(run, null, data, modelSrc);
  }

  /** Pause / resume / cancel as the buttons say. */
  async pause(): Promise<void> {
    if (!this.run || !this.live || this.phase !== 'running') return;
    this.phase = 'paused';
    await trainer().pause();
    await this.status('paused');
  }

  async resume(): Promise<void> {
    const run = this.run;
    if (!run || this.phase !== 'paused') return;
    this.error = null;
    this.notice = '';
    if (this.live) {
      this.phase = 'running';
      await trainer().resume();
      await this.status('running');
    } else {
      await this.status('running');
      await this.resumeStored(this.run ?? run);
    }
  }

  async cancel(): Promise<void> {
    const run = this.run;
    if (!run) return;
    if (this.live) {
      this.cancelAsked = true;
      await trainer().cancel(); // start() resolves with `cancelled`; finish() records it
      return;
    }
    try {
      this.run = await endRun(run, 'cancelled');
      this.phase = 'idle';
      this.notice = 'The run was cancelled; nothing was saved.';
      this.runs = await listRuns();
    } catch (e) {
      this.error = describeError(e);
    }
  }

  /** Forgets an ended (or abandoned) run. */
  async forget(id: string): Promise<void> {
    if (this.run?.id === id && (this.live || this.busy)) return;
    try {
      await deleteRun(id);
      if (this.run?.id === id) this.clear();
      this.runs = await listRuns();
    } catch (e) {
      this.error = describeError(e);
    }
  }

  /** Saves a finished run's adapter set again (after the quota was full). */
  async retrySave(): Promise<void> {
    if (!this.pending) return;
    const { run, outcome } = this.pending;
    await this.finish(run, outcome);
  }

  private clear(): void {
    this.run = null;
    this.phase = 'idle';
    this.losses = [];
    this.alphas = [];
    this.betas = [];
    this.pairAcc = [];
    this.step = 0;
    this.totalSteps = 0;
  }

  /** Shows a stored run: its settings in the form, its curve up to its last checkpoint. */
  private showRun(run: RunRecord): void {
    if (this.run?.id !== run.id) this.needFile = null;
    this.run = run;
    this.stage = run.stage;
    this.dataKey = run.data.key;
    if (run.data.n !== undefined) this.worldN = run.data.n;
    if (run.data.seed !== undefined) this.worldSeed = run.data.seed;
    this.heldOutFraction = run.data.heldOut.fraction;
    this.inputId = run.input?.id ?? '';
    this.steps = run.config.steps;
    this.batchSize = run.config.batchSize;
    this.lr = run.config.lr;
    this.rank = run.config.rank;
    this.seed = run.config.seed;
    this.targets = [...run.config.targets];
    this.microBatch = run.config.microBatch ?? null;
    this.recompute = run.config.recompute ?? false;
    this.maxSeq = run.maxSeq !== undefined ? run.maxSeq + 1 : null;
    this.checkpointEvery = run.checkpointEvery;
    this.losses = [...run.losses];
    this.alphas = (run.history['alpha'] ?? []) as number[][];
    this.betas = ((run.history['beta'] ?? []) as number[][]).slice(-10);
    this.pairAcc = (run.history['pair_acc'] ?? []) as number[];
    this.step = run.step;
    this.totalSteps = run.steps;
    this.lastCheckpoint = run.step;
    this.resumedFrom = 0;
    this.firstStep = 0;
    this.tokensPerSecond = 0;
    this.secPerStep = 0;
    this.timedSteps = 0;
    this.timedMs = 0;
  }

  /** Resumes a stored run from its checkpoint (or from the start when it had none yet). */
  private async resumeStored(run: RunRecord): Promise<void> {
    const src = sourceOfRun(run.model, studentModel.source, this.runFiles.get(run.id));
    if (!src) {
      // a file from the disk: the page cannot open it again by itself
      this.needFile = run.model ?? null;
      this.phase = 'paused';
      this.live = false;
      this.notice = needFileNotice(labelOf(run.stage), run.model, run.step);
      await this.status('paused').catch(() => {});
      if (this.dataPhase === 'idle') void this.loadData(); // the run's data, for its counts
      return;
    }
    this.needFile = null;
    this.phase = 'starting';
    this.dataRun++; // a data load in flight is for another selection
    let checkpoint: StageCheckpoint | null;
    let built: Awaited<ReturnType<typeof buildData>>;
    try {
      checkpoint = await loadCheckpoint(run.id);
      built = await buildData(run.data);
    } catch (e) {
      this.error = describeError(e);
      this.phase = 'paused';
      return;
    }
    const from = checkpoint?.step ?? 0;
    const r: RunRecord = {
      ...run,
      step: from,
      losses: checkpoint ? [...checkpoint.losses] : [],
      history: checkpoint?.history ?? {},
    };
    this.showRun(r);
    this.counts = built.counts;
    this.stageData = built.data;
    this.dataFor = JSON.stringify({ ...this.source(), heldOut: run.data.heldOut });
    this.dataPhase = 'ready';
    this.resumedFrom = from;
    await this.launch(r, checkpoint, built.data, src);
  }

  /** Runs the stage in the worker until it ends; records the outcome. */
  private async launch(
    run: RunRecord,
    resume: StageCheckpoint | null,
    stageData: StageData,
    src: StudentSource,
  ): Promise<void> {
    this.phase = 'starting';
    this.live = true;
    this.cancelAsked = false;
    this.error = null;
    this.loading = null;
    this.next.drop();
    let current = run;
    const onEvent = (e: TrainerEvent): Promise<void> | void => {
      if (this.run?.id !== run.id) return;
      if (e.type === 'load')
        this.loading = { bytesDone: e.bytesDone, bytesTotal: e.bytesTotal, tensor: e.tensor };
      else if (e.type === 'progress') {
        this.loading = null;
        if (this.phase === 'starting') this.phase = 'running';
        if (this.firstStep === 0) this.firstStep = e.step;
        else {
          this.timedSteps++;
          this.timedMs += e.stepMs;
          this.secPerStep = this.timedMs / this.timedSteps / 1000;
        }
        this.step = e.step;
        this.totalSteps = e.steps;
        this.losses = [...this.losses, e.loss];
        this.tokensPerSecond = e.tokensPerSecond;
        const m = e.metrics;
        if (m.alpha) this.alphas = [...this.alphas, m.alpha];
        if (m.beta) this.betas = [...this.betas.slice(-9), m.beta];
        if (m.pairAccuracy !== undefined) this.pairAcc = [...this.pairAcc, m.pairAccuracy];
      } else if (e.type === 'checkpoint') {
        return (async () => {
          try {
            // the status as it is now (paused while this step ran, or running again after Resume)
            const status = this.run?.id === run.id ? this.run.status : current.status;
            current = await saveCheckpoint({ ...current, status }, e.checkpoint);
            this.track(current);
            this.lastCheckpoint = e.checkpoint.step;
          } catch (err) {
            // nothing of this checkpoint was kept (one transaction); the last one still holds
            this.error = describeError(err);
            this.phase = 'paused';
            await trainer().pause();
            await this.status('paused', this.error).catch(() => {});
          }
        })();
      }
    };
    let outcome: TrainOutcome;
    try {
      const t = trainer();
      // the earlier stage's set: its frozen adapters are in the run's plan with their own shapes
      const shapes = run.input ? await this.inputShapes(run.stage, run.input.id) : undefined;
      const request = {
        stage: run.stage,
        data: stageData,
        dataKey: this.dataFor,
        config: run.config,
        ...(resume ? { resume } : {}),
        ...(run.maxSeq !== undefined ? { maxSeq: run.maxSeq } : {}),
        ...(run.memoryBudget !== undefined ? { memoryBudget: run.memoryBudget } : {}),
        ...(shapes ? { inputShapes: shapes } : {}),
      };
      // the run's own plan on the trainer's device (a resumed run too): a refusal pauses it first
      await t.init();
      await t.open(src);
      const check = await t.plan(request);
      const refusal = refusalOf(check, '');
      if (refusal) {
        this.live = false;
        this.phase = 'paused';
        this.error = refusal;
        await this.status('paused', this.error).catch(() => {});
        return;
      }
      const inputs = run.input ? await adapterFiles(run.input.id) : undefined;
      // Cancel pressed while the worker was starting: it never trains
      if (this.cancelAsked) outcome = { cancelled: true, steps: run.step, losses: run.losses, files: null };
      else
        outcome = await t.start(
          { ...request, checkpointEvery: run.checkpointEvery, ...(inputs ? { inputs } : {}) },
          Comlink.proxy(onEvent),
        );
    } catch (e) {
      this.live = false;
      this.loading = null;
      const msg = describeError(e);
      this.error = msg;
      if (msg.code === 'DEVICE_LOST' || msg.code === 'OUT_OF_MEMORY') {
        // a fresh worker, a fresh device (all its memory free again): Resume goes on from the last
        // checkpoint (the trainer's message says so; the generic advice to reload is not needed)
        const lost = e instanceof Error ? { ...msg, message: e.message } : msg;
        this.error = lost;
        dropTrainer();
        this.phase = 'paused';
        this.notice = `Resume goes on from the last checkpoint (step ${this.lastCheckpoint}).`;
        await this.status('paused', lost).catch(() => {});
      } else {
        this.phase = 'error';
        try {
          this.run = await endRun(current, 'failed', { error: msg });
        } catch {
          // the message above says what happened; the run stays as it was stored
        }
      }
      this.runs = await listRuns().catch(() => this.runs);
      return;
    }
    this.live = false;
    this.loading = null;
    await this.finish(current, outcome);
  }

  private async finish(run: RunRecord, outcome: TrainOutcome): Promise<void> {
    try {
      if (outcome.cancelled || !outcome.files) {
        this.run = await endRun(run, 'cancelled', { losses: outcome.losses });
        this.phase = 'idle';
        this.notice = `The run was cancelled after ${outcome.steps} steps; nothing was saved.`;
      } else {
        this.phase = 'saving';
        const last = outcome.losses.at(-1);
        const set = await saveAdapterSet(
          {
            name: `${labelOf(run.stage)} · ${run.data.name} · ${outcome.steps} steps`,
            stage: run.stage,
            model: modelOfRun(run),
            source: 'trained',
            summary: {
              steps: outcome.steps,
              ...(last !== undefined ? { final_loss: Number(last.toFixed(4)) } : {}),
              lr: run.config.lr,
              batch: run.config.batchSize,
              rank: run.config.rank,
              data: run.data.name,
            },
          },
          outcome.files,
        );
        this.pending = null;
        this.pendingSave = false;
        this.run = await endRun(run, 'done', { adapterSetId: set.id, losses: outcome.losses });
        this.savedSet = set;
        this.phase = 'done';
        this.notice =
          modelOfRun(run) === MODEL
            ? `Saved as "${set.name}": Solve and Compare list it.`
            : `Saved as "${set.name}" for ${modelOfRun(run)}: Solve offers it while ${modelOfRun(run)} is the model in use.`;
      }
    } catch (e) {
      // the run's final checkpoint stays: Save retries now, a reload redoes it from there
      this.pending = { run, outcome };
      this.pendingSave = true;
      this.error = describeError(e);
      this.phase = 'error';
    }
    await this.refreshLists();
  }

  private async status(s: RunRecord['status'], error?: UserMessage): Promise<void> {
    const run = this.run;
    if (!run) return;
    const next = await setRunStatus(run.id, s, error);
    if (next && this.run?.id === run.id) this.track(next);
  }

  /** The current run's record as stored, in the run and in the list. */
  private track(run: RunRecord): void {
    if (this.run?.id === run.id) this.run = run;
    this.runs = this.runs.some((r) => r.id === run.id)
      ? this.runs.map((r) => (r.id === run.id ? run : r))
      : [run, ...this.runs];
  }
}

/** D_pos / D_neg of the training side of a dataset (the same every time for the same source). */
async function buildData(
  src: Pick<RunDataSource, 'key' | 'n' | 'seed' | 'heldOut'>,
): Promise<{ data: StageData; counts: DataCounts }> {
  let ds: Dataset;
  if (src.key === 'world') {
    const world = {
      ...(src.n !== undefined ? { n: src.n } : {}),
      ...(src.seed !== undefined ? { seed: src.seed } : {}),
    };
    ds = (await data().builtin('world', publicUrl(''), world)).dataset;
  } else ds = (await loadDataset(src.key.replace(/^saved:/, ''))).dataset;
  const { train, heldOut } = heldOutSplit(ds, src.heldOut);
  const { pos, neg } = splitPosNeg(train);
  const item = (r: (typeof pos)[number]) => ({ question: r.problem.question, rationale: r.rationale.text });
  return {
    data: { pos: pos.map(item), neg: neg.map(item) },
    counts: {
      name: src.key === 'world' ? `world n=${src.n ?? 500} seed ${src.seed ?? 1}` : ds.name,
      questions: train.problems.length,
      heldOut: heldOut.problems.length,
      pos: pos.length,
      neg: neg.length,
    },
  };
}

export const train = new TrainState();
