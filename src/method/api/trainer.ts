/**
 * The trainer worker's engine (Train view): one stage of the method (`runStage`) on the student,
 * with live progress, pause / resume / cancel, checkpoints as plain data (the app keeps them in
 * IndexedDB) and the stage's files at the end (what `stageFiles` writes: the app saves them as an
 * adapter set). Plain data in and out; big buffers cross the worker boundary transferred.
 *
 * Inputs from earlier stages come as adapter-set files: NAT and the linear mix take a Neg set
 * (its `lora.safetensors` is the negative LoRA), NCE takes a NAT set (positive LoRA, negative
 * LoRA and integration unit). A lost GPU device ends the run with EngineError('DEVICE_LOST'); the
 * app resumes it from its last checkpoint on a fresh device.
 *
 * @example
 *   const t = new TrainerEngine();
 *   await t.init();                                    // navigator.gpu in a worker
 *   await t.load({ modelUrl: '/models/arith-student.safetensors' });
 *   // or a GGUF LLaMA: its header is read, the weights load when a run starts
 *   await t.open({ gguf: file, key: 'gguf:1', name: 'llama-2-7b' });
 *   const { plan, data: seen } = await t.plan({ stage: 'kd', data, config: { recompute: true } });
 *   plan?.verdict; // 'ok' | 'refused' (with the planner's suggestions)
 *   const r = await t.start({ stage: 'kd', data, config: { steps: 20 } }, (e) => {
 *     if (e.type === 'progress') console.log(e.step, e.loss);
 *     if (e.type === 'checkpoint') return store(e.checkpoint);  // awaited before the next step
 *   });
 *   r.files['lora.safetensors'];                       // Uint8Array
 */
import * as Comlink from 'comlink';
import { EngineError, toPlainError, type PlainError } from '../../engine/errors.ts';
import type { GpuInfo } from '../../engine/gpu/device.ts';
import type { GpuErrorWatch } from '../../engine/gpu/gpu.ts';
import { fetchBytes } from '../../engine/api/inference.ts';
import { CharTokenizer, checkTokenizerVocab } from '../../engine/io/chartok.ts';
import { readLlamaSafetensors } from '../../engine/io/checkpoint.ts';
import type { LlamaConfig } from '../../engine/model/config.ts';
import { paramCount } from '../../engine/model/config.ts';
import type { LoraTarget } from '../../engine/model/llama.ts';
import { DEFAULT_STAGE, STAGES, type StageConfig, type StageName } from '../stages/config.ts';
import { readStageFiles, stageFiles } from '../stages/files.ts';
import { encodeExample } from '../stages/text.ts';
import {
  runStage,
  type StageAdapters,
  type StageCheckpoint,
  type StageData,
  type StageProgress,
  type TrainItem,
} from '../stages/stages.ts';
import {
  OUR_WEIGHTS,
  planTraining,
  unreadableChars,
  type BigStudent,
  type LoadProgress,
  type PlanLimits,
  type StudentTokenizer,
  type TrainPlanView,
} from './big-student.ts';
import { openGgufStudent } from './gguf-student.ts';
import { openMlcStudent } from './mlc-student.ts';
import {
  isBigSource,
  StudentRuntime,
  type RuntimeOptions,
  type StudentModelInfo,
  type StudentSource,
} from './runtime.ts';

export type { TrainPlanView, TrainSuggestion } from './big-student.ts';

/** The built-in student's recipe (public/models/arith-student.md): LoRA r 8 on all seven linear layers. */
export const ALL_TARGETS: readonly LoraTarget[] = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'];
export const STUDENT_RECIPE: Readonly<Partial<StageConfig>> = {
  rank: 8,
  alpha: 16,
  dropout: 0.05,
  targets: [...ALL_TARGETS],
  lr: 5e-3,
  batchSize: 16,
  steps: 350,
  seed: 1,
};

/** Which earlier adapter set a stage needs: NAT / linear mix a Neg set, NCE a NAT set. */
export function inputSetFor(stage: StageName): 'neg' | 'nat' | null {
  if (stage === 'nat' || stage === 'linmix') return 'neg';
  if (stage === 'nce') return 'nat';
  return null;
}

export interface TrainRequest {
  stage: StageName;
  /** D_pos and D_neg (the training side of the held-out split). */
  data: StageData;
  /** Over DEFAULT_STAGE; ignored on resume (the checkpoint's config holds). */
  config: Partial<StageConfig>;
  /** An earlier stage's adapter-set files (Neg for nat / linmix, NAT for nce), by file name. */
  inputs?: Record<string, ArrayBuffer>;
  /** Continue from this checkpoint (same stage, data and inputs). */
  resume?: StageCheckpoint;
  /** Names `data` (the same key, the same data): it is tokenized once per student and key. */
  dataKey?: string;
  /** Steps between checkpoints (default 10; 0 = none but the final one). */
  checkpointEvery?: number;
  /**
   * At most this many positions per example (its tokens − 1); longer examples are left out and
   * counted (`checkStageData`). Default and at most: the model's context.
   */
  maxSeq?: number;
  /** The GPU memory the user says can be used, in bytes (the planner assumes 4 GiB without). */
  memoryBudget?: number;
}

/** What `plan` needs: the run's stage, data and settings as `start` will get them. */
export type TrainPlanRequest = Pick<
  TrainRequest,
  'stage' | 'data' | 'config' | 'maxSeq' | 'memoryBudget' | 'resume' | 'dataKey'
>;

/** The student the trainer holds (opened: a big model's header; loaded: on the GPU). */
export interface TrainStudent {
  key: string;
  name: string;
  format: 'dust2gold' | 'gguf' | 'mlc';
  config: LlamaConfig;
  params: number;
  tokenizer: { kind: 'char' | 'spm'; tokens: number };
  /** The weights are on this worker's GPU (a big model loads when a run starts). */
  loaded: boolean;
}

/** One side of the data (D_pos or D_neg) as the student's tokenizer reads it. */
export interface SideCheck {
  total: number;
  /** Examples that are trained on. */
  kept: number;
  /** Examples with characters the tokenizer cannot read (left out). */
  unreadable: number;
  /** Readable examples longer than the cap (left out). */
  tooLong: number;
  /** Some of the characters it cannot read (at most 12). */
  chars: string[];
}

/** What of the data a run trains on. */
export interface DataCheck {
  /** The cap: at most this many positions (tokens − 1) per example. */
  maxSeq: number;
  /** The model's context (the cap's upper bound). */
  context: number;
  /** The longest example kept on the sides the stage trains on, in positions: the plan's sequence length. */
  longest: number;
  pos: SideCheck;
  neg: SideCheck;
}

export interface TrainPlanResult {
  student: TrainStudent;
  data: DataCheck;
  /** The LoRA step's plan; null when no example is left to train on (`problem` says why). */
  plan: TrainPlanView | null;
  problem: string | null;
  /** What the plan does not count for this stage (the frozen parts NAT / NCE add), or null. */
  note: string | null;
}

/** Per-step figures, by stage: NAT mean α per layer, NCE β per sequence, ranker pair accuracy. */
export interface StepMetrics {
  alpha?: number[];
  beta?: number[];
  pairAccuracy?: number;
}

export interface ProgressEvent {
  type: 'progress';
  step: number;
  steps: number;
  loss: number;
  gradNorm: number;
  lr: number;
  /** Loss tokens (pairs for the ranker and CL) per second over this step. */
  tokensPerSecond: number;
  /** Wall time of this step, ms. */
  stepMs: number;
  metrics: StepMetrics;
}

export interface CheckpointEvent {
  type: 'checkpoint';
  checkpoint: StageCheckpoint;
}

export interface DoneEvent {
  type: 'done';
  /** The stage's files (`stageFiles`), by name. */
  files: Record<string, Uint8Array>;
  steps: number;
  losses: number[];
}

export interface ErrorEvent {
  type: 'error';
  error: PlainError;
}

/** A big model's weights coming onto the GPU when its run starts (per tensor or chunk read). */
export interface LoadEvent extends LoadProgress {
  type: 'load';
}

export type TrainerEvent = ProgressEvent | CheckpointEvent | DoneEvent | ErrorEvent | LoadEvent;

/** What `start` resolves to: the stage's files, or none when it was cancelled. */
export interface TrainOutcome {
  cancelled: boolean;
  steps: number;
  losses: number[];
  files: Record<string, Uint8Array> | null;
}

function metricsOf(m: StageProgress['metrics']): StepMetrics {
  const out: StepMetrics = {};
  if (Array.isArray(m['alpha'])) out.alpha = m['alpha'];
  if (Array.isArray(m['beta'])) out.beta = m['beta'];
  if (typeof m['pair_acc'] === 'number') out.pairAccuracy = m['pair_acc'];
  return out;
}

/** The buffers of a checkpoint, to transfer instead of copying. */
function buffersOf(c: StageCheckpoint): ArrayBuffer[] {
  const seen = new Set<ArrayBuffer>();
  const add = (a: Float32Array) => {
    if (a.buffer instanceof ArrayBuffer) seen.add(a.buffer);
  };
  for (const a of Object.values(c.adapters))
    for (const t of Object.values((a as { tensors: Record<string, { data: Float32Array }> }).tensors))
      add(t.data);
  for (const x of Object.values(c.optimizer.m)) add(x);
  for (const x of Object.values(c.optimizer.v)) add(x);
  return [...seen];
}

/** The inputs a stage takes from an adapter set's files; a clear refusal when the set is not one. */
export function stageInputs(stage: StageName, files: Record<string, ArrayBuffer> | undefined): StageAdapters {
  const need = inputSetFor(stage);
  if (!need) return {};
  const has = files && Object.keys(files).some((f) => f.endsWith('.safetensors'));
  if (!has) {
    throw new EngineError(
      'BAD_ARGUMENT',
      need === 'neg'
        ? `${stage === 'nat' ? 'NAT' : 'The linear mix'} learns next to a frozen negative LoRA, and none was given. ` +
            'Pick a Neg adapter set (the built-in "Negative LoRA" works), or train the Neg stage first.'
        : 'NCE distils the NAT model, and none was given. Pick a NAT adapter set (the built-in "NAT" works), ' +
            'or train the NAT stage first.',
    );
  }
  const { stage: from, adapters } = readStageFiles(files);
  if (need === 'neg') {
    // a Neg set's LoRA is the negative one; a NAT or linear-mix set carries it as `neg`
    const neg =
      from === 'neg' ? adapters.lora : (adapters.neg ?? (from === null ? adapters.lora : undefined));
    if (!neg)
      throw new EngineError(
        'BAD_ARGUMENT',
        `This adapter set comes from the ${from ?? 'unknown'} stage and holds no negative LoRA. ` +
          'Pick a set trained with the Neg stage (on D_neg).',
      );
    return { neg };
  }
  if (!adapters.lora || !adapters.neg || !adapters.nat)
    throw new EngineError(
      'BAD_ARGUMENT',
      `NCE needs a NAT adapter set (positive LoRA, negative LoRA and integration unit); this one comes from ` +
        `the ${from ?? 'unknown'} stage and holds ${Object.keys(files).sort().join(', ')}. Pick a NAT set.`,
    );
  return { lora: adapters.lora, neg: adapters.neg, nat: adapters.nat };
}

/** Which sides of the data a stage trains on (what its longest sequence is taken over). */
export function stageSides(stage: StageName): readonly ('pos' | 'neg')[] {
  switch (stage) {
    case 'neg':
      return ['neg'];
    case 'kd':
    case 'nat':
    case 'linmix':
    case 'nce':
      return ['pos'];
    default:
      return ['pos', 'neg'];
  }
}

/** Sequences on one tape per example of the stage's batch: a pair (ranker, CL) is two. */
export function sequencesPerExample(stage: StageName): number {
  return stage === 'rank' || stage === 'cl' ? 2 : 1;
}

/** Per example: positions (tokens − 1), or −1 when the tokenizer cannot read it. */
export function measureItems(tok: StudentTokenizer, items: readonly TrainItem[]): Int32Array {
  const out = new Int32Array(items.length);
  const unk = tok instanceof CharTokenizer ? null : tok.unk;
  items.forEach((it, i) => {
    try {
      const { tokens } = encodeExample(tok, it.question, it.rationale);
      out[i] = unk !== null && tokens.includes(unk) ? -1 : tokens.length - 1;
    } catch {
      out[i] = -1; // a character tokenizer refuses characters outside its alphabet
    }
  });
  return out;
}

/**
 * The examples a run trains on: those the student's tokenizer reads (no unknown token, no
 * refusal) of at most `maxSeq` positions; the others are counted, never trained on. `lengths` are
 * `measureItems` of each side (given: not measured again).
 */
export function checkStageData(
  tok: StudentTokenizer,
  stage: StageName,
  data: StageData,
  maxSeq: number,
  context: number,
  lengths?: { pos: Int32Array; neg: Int32Array },
): { data: StageData; check: DataCheck } {
  const side = (items: readonly TrainItem[], lens: Int32Array) => {
    const kept: TrainItem[] = [];
    const c: SideCheck = { total: items.length, kept: 0, unreadable: 0, tooLong: 0, chars: [] };
    let longest = 0;
    items.forEach((it, i) => {
      const n = lens[i]!;
      if (n < 0) {
        c.unreadable++;
        if (c.chars.length < 12)
          for (const ch of unreadableChars(tok, it.question + it.rationale))
            if (c.chars.length < 12 && !c.chars.includes(ch)) c.chars.push(ch);
      } else if (n > maxSeq || n < 1) c.tooLong++;
      else {
        kept.push(it);
        longest = Math.max(longest, n);
      }
    });
    c.kept = kept.length;
    return { kept, c, longest };
  };
  const lens = lengths ?? { pos: measureItems(tok, data.pos), neg: measureItems(tok, data.neg) };
  const pos = side(data.pos, lens.pos);
  const neg = side(data.neg, lens.neg);
  const longest = Math.max(0, ...stageSides(stage).map((s) => (s === 'pos' ? pos : neg).longest));
  return {
    data: { pos: pos.kept, neg: neg.kept },
    check: { maxSeq, context, longest, pos: pos.c, neg: neg.c },
  };
}

/** The name a source is known by in the trainer (its `key`, else its URL or name). */
function sourceKey(src: StudentSource): string {
  return (
    src.key ??
    src.modelUrl ??
    src.ggufUrl ??
    src.mlcUrl ??
    (src.gguf ? `file:${(src.gguf as File).name ?? ''}:${src.gguf.size}` : `bytes:${src.name ?? 'model'}`)
  );
}

/** A student opened by `open` / `load`: the source, and for a big model what its header says. */
interface Opened {
  key: string;
  src: StudentSource;
  big: BigStudent<unknown> | null;
  /** measureItems per data key (the app names its data; the same data is not tokenized again). */
  lengths: Map<string, { pos: Int32Array; neg: Int32Array }>;
}

const STAGE_NOTES: Partial<Record<StageName, string>> = {
  nat: "NAT also holds the frozen negative LoRA and the integration unit (a few of the LoRA's bytes each), not counted here.",
  linmix:
    'The linear mix also holds the frozen negative LoRA (as many bytes as the adapters row), not counted here.',
  nce:
    'NCE also runs the NAT model and the negative model on each micro-batch and keeps their logits: ' +
    'about twice the logits row more than counted here.',
};

/** What a run would train on, the plan of one step, and the refusal (if any) to throw. */
interface Prepared {
  data: StageData;
  result: TrainPlanResult;
  error: EngineError | null;
}

/**
 * The data as `tok` reads it (lengths cached per data key in `lengths`) and the planner's verdict
 * on one LoRA step of `s` on a device with `limits`: what `plan` answers and `start` checks.
 */
function prepareRun(
  student: TrainStudent,
  s: { config: LlamaConfig; tok: StudentTokenizer; weights: BigStudent<unknown>['weights'] },
  lengths: Map<string, { pos: Int32Array; neg: Int32Array }>,
  limits: PlanLimits,
  req: TrainPlanRequest,
): Prepared {
  const { config, tok, weights } = s;
  const c: StageConfig = req.resume ? req.resume.config : { ...DEFAULT_STAGE, ...req.config };
  const context = config.maxSeqLen;
  const cap = req.maxSeq ?? context;
  if (!(Number.isInteger(cap) && cap >= 1))
    throw new EngineError(
      'BAD_ARGUMENT',
      `The longest sequence is ${cap}: give a whole number of tokens ≥ 1, or none.`,
    );
  const maxSeq = Math.min(cap, context);
  let lens = req.dataKey !== undefined ? lengths.get(req.dataKey) : undefined;
  if (!lens) {
    lens = { pos: measureItems(tok, req.data.pos), neg: measureItems(tok, req.data.neg) };
    if (req.dataKey !== undefined) lengths.set(req.dataKey, lens);
  }
  const { data, check } = checkStageData(tok, req.stage, req.data, maxSeq, context, lens);
  const note = STAGE_NOTES[req.stage] ?? null;
  const empty = stageSides(req.stage).filter((x) => check[x].total > 0 && check[x].kept === 0);
  if (check.longest < 1 || empty.length > 0) {
    const what = (empty[0] ?? stageSides(req.stage)[0]!) === 'pos' ? 'D_pos' : 'D_neg';
    const sc = check[what === 'D_pos' ? 'pos' : 'neg'];
    const problem =
      sc.total === 0
        ? `${what} is empty: this stage has nothing to train on.`
        : `None of the ${sc.total} examples of ${what} is left to train on: ${sc.unreadable} have characters ${student.name}'s tokenizer cannot read` +
          `${sc.chars.length ? ` (${sc.chars.map((ch) => JSON.stringify(ch)).join(' ')})` : ''}, ${sc.tooLong} are longer than ${maxSeq + 1} tokens. ` +
          (sc.tooLong > 0 && maxSeq < context
            ? `Allow longer examples (up to ${context + 1} tokens).`
            : sc.tooLong > 0
              ? 'Use a model with a longer context, or shorter data.'
              : 'Use a model whose vocabulary reads this data.');
    return {
      data,
      result: { student, data: check, plan: null, problem, note },
      error: new EngineError('BAD_ARGUMENT', problem),
    };
  }
  const micro = Math.min(c.microBatch ?? c.batchSize, c.batchSize);
  const { view, error } = planTraining(
    limits,
    { config, weights },
    {
      batch: micro * sequencesPerExample(req.stage),
      seq: check.longest,
      rank: c.rank,
      targets: c.targets,
      dropout: c.dropout,
      recompute: c.recompute ?? false,
      ...(req.memoryBudget !== undefined ? { memoryBudget: req.memoryBudget } : {}),
    },
  );
  return { data, result: { student, data: check, plan: view, problem: null, note }, error };
}

/**
 * Plans runs without a GPU device (the Train view's planner worker): a big model's header, or our
 * model's files read on the CPU (nothing uploaded), and the adapter's limits — what the trainer's
 * device will have, since it asks for the adapter's limits. The trainer checks the same plan again
 * on its own device before a run allocates anything.
 *
 * @example
 *   const p = new TrainPlanner();
 *   await p.open({ gguf: file, key: 'gguf:1', name: 'llama-2-7b' });
 *   const r = await p.plan({ stage: 'kd', data, config: { recompute: true }, memoryBudget: 8 * 2 ** 30 });
 */
export class TrainPlanner {
  private opened: {
    student: TrainStudent;
    tok: StudentTokenizer;
    weights: BigStudent<unknown>['weights'];
    big: BigStudent<unknown> | null;
    lengths: Map<string, { pos: Int32Array; neg: Int32Array }>;
  } | null = null;
  private limits: PlanLimits | null = null;
  private pending: { key: string; done: Promise<TrainStudent> } | null = null;

  constructor(private readonly opts: RuntimeOptions = {}) {}

  /** The adapter's buffer limits (no device is opened): what the trainer's device gets. */
  private async adapterLimits(gpu: GPU | undefined): Promise<PlanLimits> {
    if (this.limits) return this.limits;
    if (!gpu)
      throw new EngineError(
        'NO_WEBGPU',
        'This browser has no WebGPU, so nothing can be trained here. Use a current Chrome or Edge (version 113 or later), or Firefox 141+ / Safari 26+.',
      );
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter)
      throw new EngineError(
        'NO_ADAPTER',
        'WebGPU is present but found no usable GPU adapter. Update the graphics driver, or enable hardware acceleration in the browser settings.',
      );
    const l = adapter.limits;
    this.limits = {
      maxBufferSize: l.maxBufferSize,
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
    };
    return this.limits;
  }

  /** Opens a student for planning (the same key again reads nothing; a call under way is shared). */
  async open(
    src: StudentSource,
    gpu: GPU | undefined = (globalThis.navigator as Navigator | undefined)?.gpu,
  ): Promise<TrainStudent> {
    const key = sourceKey(src);
    if (this.pending?.key === key) return this.pending.done;
    if (this.opened?.student.key === key) {
      const big = this.opened.big;
      if (big && src.gguf)
        await openGgufStudent({ ...src, key }, big, bindingOf(await this.adapterLimits(gpu)));
      return this.opened.student;
    }
    const done = this.openNow({ ...src, key }, gpu);
    this.pending = { key, done };
    try {
      return await done;
    } finally {
      if (this.pending?.done === done) this.pending = null;
    }
  }

  private async openNow(src: StudentSource & { key: string }, gpu: GPU | undefined): Promise<TrainStudent> {
    const limits = await this.adapterLimits(gpu);
    const lengths = new Map<string, { pos: Int32Array; neg: Int32Array }>();
    if (isBigSource(src)) {
      const big =
        src.mlcUrl !== undefined
          ? await openMlcStudent(src, null, this.opts.caches)
          : await openGgufStudent(src, null, bindingOf(limits));
      const student: TrainStudent = {
        key: src.key,
        name: src.name ?? big.name,
        format: big.format,
        config: big.config,
        params: paramCount(big.config),
        tokenizer: { kind: 'spm', tokens: big.tokenizer.vocabSize },
        loaded: false,
      };
      this.opened = { student, tok: big.tokenizer, weights: big.weights, big, lengths };
      return student;
    }
    // our safetensors model: its header and tokenizer, read as the runtime reads them (no upload)
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
    const { config } = readLlamaSafetensors(bytes, name);
    const tok = CharTokenizer.fromJSON(json);
    checkTokenizerVocab(tok.vocabSize, config.vocabSize, tokUrl ?? 'the tokenizer', name);
    const student: TrainStudent = {
      key: src.key,
      name,
      format: 'dust2gold',
      config,
      params: paramCount(config),
      tokenizer: { kind: 'char', tokens: tok.vocabSize },
      loaded: false,
    };
    this.opened = { student, tok, weights: OUR_WEIGHTS, big: null, lengths };
    return student;
  }

  /** As `TrainerEngine.plan`, for the student `open` gave. */
  async plan(req: TrainPlanRequest): Promise<TrainPlanResult> {
    if (!STAGES.includes(req.stage))
      throw new EngineError('BAD_ARGUMENT', `There is no stage "${String(req.stage)}".`);
    const o = this.opened;
    if (!o || !this.limits) throw new EngineError('BAD_ARGUMENT', 'Open a student model before planning.');
    await Promise.resolve();
    return prepareRun(
      o.student,
      { config: o.student.config, tok: o.tok, weights: o.weights },
      o.lengths,
      this.limits,
      req,
    ).result;
  }
}

const bindingOf = (l: PlanLimits): number =>
  Math.min(l['maxBufferSize'] ?? Infinity, l['maxStorageBufferBindingSize'] ?? Infinity);

export class TrainerEngine {
  private rt: StudentRuntime | null = null;
  private source: StudentSource | null = null;
  private student: Opened | null = null;
  private gpuObject: GPU | undefined;
  private running = false;
  private abort: AbortController | null = null;
  private paused = false;
  private wake: (() => void) | null = null;
  private opening: Promise<StudentRuntime> | null = null;
  /** An `open` under way (calls at the same time for the same key share it). */
  private openingStudent: { key: string; done: Promise<TrainStudent> } | null = null;

  /** `opts.caches`: where MLC models are read from (the browser's Cache Storage by default). */
  constructor(private readonly opts: RuntimeOptions = {}) {}

  /** Opens the GPU: navigator.gpu in a worker; Node's GPU (nodeGpu()) in tests. */
  async init(gpu: GPU | undefined = (globalThis.navigator as Navigator | undefined)?.gpu): Promise<GpuInfo> {
    this.gpuObject = gpu;
    // calls at the same time share one device
    this.opening ??= (async () => {
      try {
        if (!this.rt || this.rt.gpu.state !== 'ready') {
          this.rt?.destroy();
          this.rt = null;
          this.rt = await StudentRuntime.open(gpu, {}, this.opts);
        }
        return this.rt;
      } finally {
        this.opening = null;
      }
    })();
    return (await this.opening).info;
  }

  /** Loads the base model now (a big one is planned for inference first, as Solve's `load`). */
  async load(src: StudentSource): Promise<StudentModelInfo> {
    if (this.running) throw new EngineError('BAD_ARGUMENT', 'A run is in progress: cancel it first.');
    if (!this.rt) await this.init();
    const key = sourceKey(src);
    const withKey = { ...src, key };
    // a big model's header first (what planning needs: its weight types and tokenizer)
    if (isBigSource(src) && !(this.student?.key === key && this.student.big)) await this.open(src);
    const info = await this.rt!.load(withKey);
    this.source = withKey;
    const keep = this.student?.key === key ? this.student : null;
    this.student = { key, src: withKey, big: keep?.big ?? null, lengths: keep?.lengths ?? new Map() };
    return info;
  }

  /**
   * The student runs train: our models are loaded at once (small); a GGUF or MLC model's header is
   * read (config, tokenizer, weight types: what planning and tokenizing need) and its weights load
   * when a run starts, after its plan fits. The same key again reads nothing.
   */
  async open(src: StudentSource): Promise<TrainStudent> {
    const key = sourceKey(src);
    const pending = this.openingStudent;
    if (pending && pending.key === key) return pending.done;
    if (pending) await pending.done.catch(() => {});
    const done = this.openNow(src);
    this.openingStudent = { key, done };
    try {
      return await done;
    } finally {
      if (this.openingStudent?.done === done) this.openingStudent = null;
    }
  }

  private async openNow(src: StudentSource): Promise<TrainStudent> {
    if (this.running) throw new EngineError('BAD_ARGUMENT', 'A run is in progress: cancel it first.');
    if (!this.rt) await this.init();
    const rt = this.rt!;
    const key = sourceKey(src);
    if (this.student?.key === key && (this.student.big || rt.modelInfo?.key === key)) {
      // a Blob that crossed the worker boundary again is a new object for the same bytes
      this.student.src = { ...src, key };
      if (this.student.big && src.gguf)
        await openGgufStudent({ ...src, key }, this.student.big, rt.be.maxTensorBytes);
      return this.describe(this.student);
    }
    if (!isBigSource(src)) {
      await this.load(src);
      return this.describe(this.student!);
    }
    const big =
      src.mlcUrl !== undefined
        ? await openMlcStudent({ ...src, key }, null, this.opts.caches)
        : await openGgufStudent({ ...src, key }, null, rt.be.maxTensorBytes);
    // another big model held for an earlier run leaves the GPU (ours are small: they stay until replaced)
    if (rt.modelInfo && rt.modelInfo.key !== key && rt.modelInfo.format !== 'dust2gold') rt.unload();
    this.student = { key, src: { ...src, key }, big, lengths: new Map() };
    return this.describe(this.student);
  }

  private describe(o: Opened): TrainStudent {
    const rt = this.rt!;
    const loaded = rt.modelInfo !== null && rt.modelInfo.key === o.key;
    if (o.big)
      return {
        key: o.key,
        name: o.src.name ?? o.big.name,
        format: o.big.format,
        config: o.big.config,
        params: paramCount(o.big.config),
        tokenizer: { kind: 'spm', tokens: o.big.tokenizer.vocabSize },
        loaded,
      };
    const info = rt.modelInfo;
    if (!info || !loaded)
      throw new EngineError('BAD_ARGUMENT', 'No student model is loaded yet: load one before training.');
    return {
      key: o.key,
      name: info.name,
      format: info.format ?? 'dust2gold',
      config: info.config,
      params: info.params,
      tokenizer: info.tokenizer ?? { kind: 'char', tokens: info.config.vocabSize },
      loaded,
    };
  }

  /** The student `open` / `load` gave, with what planning and tokenizing need. */
  private current(): {
    o: Opened;
    config: LlamaConfig;
    tok: StudentTokenizer;
    weights: BigStudent<unknown>['weights'];
  } {
    const o = this.student;
    const rt = this.rt;
    if (!o || !rt)
      throw new EngineError('BAD_ARGUMENT', 'No student model is loaded yet: load one before training.');
    if (o.big) return { o, config: o.big.config, tok: o.big.tokenizer, weights: o.big.weights };
    if (rt.modelInfo?.key !== o.key)
      throw new EngineError('BAD_ARGUMENT', 'No student model is loaded yet: load one before training.');
    return { o, config: rt.modelInfo.config, tok: rt.tokenizer, weights: OUR_WEIGHTS };
  }

  /** The data as the student reads it (tokenized once per data key), and the plan for one step. */
  private prepare(req: TrainPlanRequest): Prepared {
    const { o, config, tok, weights } = this.current();
    return prepareRun(this.describe(o), { config, tok, weights }, o.lengths, this.rt!.gpu.limits, req);
  }

  /**
   * What a run with these settings would train on and the planner's verdict on its LoRA step,
   * without allocating anything (the student must be opened or loaded). `dataKey` names `data`:
   * the same key again is not tokenized again.
   */
  async plan(req: TrainPlanRequest): Promise<TrainPlanResult> {
    if (!STAGES.includes(req.stage))
      throw new EngineError('BAD_ARGUMENT', `There is no stage "${String(req.stage)}".`);
    await Promise.resolve();
    return this.prepare(req).result;
  }

  get modelInfo(): StudentModelInfo | null {
    return this.rt?.modelInfo ?? null;
  }

  /** True while a run is going (paused included). */
  get busy(): boolean {
    return this.running;
  }

  /**
   * Trains one stage. Events: `progress` each step, `checkpoint` every `checkpointEvery` steps and
   * at the end (awaited: the run goes on once the app has stored it), `done` with the files, or
   * `error`. Resolves with the outcome; rejects with an EngineError (DEVICE_LOST when the GPU went).
   */
  async start(req: TrainRequest, onEvent: (e: TrainerEvent) => unknown): Promise<TrainOutcome> {
    if (this.running)
      throw new EngineError('BAD_ARGUMENT', 'A run is already in progress: pause or cancel it first.');
    // before anything of the run is allocated: the stage and its inputs, the data as the student
    // reads it, and the plan of one step (a refusal leaves the trainer as it was)
    let inputs: StageAdapters;
    let data: StageData;
    try {
      if (!STAGES.includes(req.stage))
        throw new EngineError('BAD_ARGUMENT', `There is no stage "${String(req.stage)}".`);
      inputs = stageInputs(req.stage, req.inputs);
      const p = this.prepare(req);
      if (p.error) throw p.error;
      data = p.data;
    } catch (e) {
      await this.report(onEvent, e);
      throw e;
    }
    this.running = true;
    this.paused = false;
    this.abort = new AbortController();
    let watched: GpuErrorWatch | null = null;
    let step: number | null = null; // the last step done in this call
    const batch = req.resume?.config.batchSize ?? req.config.batchSize ?? DEFAULT_STAGE.batchSize;
    try {
      const loaded = await this.loadForRun(onEvent, this.abort.signal);
      if (!loaded)
        return {
          cancelled: true,
          steps: req.resume?.step ?? 0,
          losses: [...(req.resume?.losses ?? [])],
          files: null,
        };
      const rt = await this.ready();
      const every = req.checkpointEvery ?? 10;
      const steps = req.resume?.config.steps ?? req.config.steps ?? DEFAULT_STAGE.steps;
      if (!(steps >= 1))
        throw new EngineError('BAD_ARGUMENT', `A run needs at least one step (got ${steps}).`);
      let last = performance.now();
      const watch = rt.gpu.watchErrors();
      watched = watch;
      const r = await runStage({
        stage: req.stage,
        model: rt.model,
        tokenizer: rt.tokenizer,
        data,
        config: req.config,
        inputs,
        signal: this.abort.signal,
        gate: async () => {
          await this.gate();
          await watch.check(); // what the GPU reported for the step before (setup for the first)
        },
        checkpointEvery: every,
        ...(req.resume ? { resume: req.resume } : {}),
        onProgress: (p) => {
          step = p.step;
          const now = performance.now();
          const e: ProgressEvent = {
            type: 'progress',
            step: p.step,
            steps: p.steps,
            loss: p.loss,
            gradNorm: p.gradNorm,
            lr: p.lr,
            tokensPerSecond: p.rate,
            stepMs: now - last,
            metrics: metricsOf(p.metrics),
          };
          last = now;
          void Promise.resolve(onEvent(e)).catch(() => {});
        },
        onCheckpoint: async (c) => {
          await watch.check(); // no checkpoint leaves of a step the GPU failed
          await onEvent(Comlink.transfer({ type: 'checkpoint', checkpoint: c }, buffersOf(c)));
          last = performance.now(); // the wait for storage is not the next step's time
        },
      });
      await watch.check(false);
      if (r.cancelled) return { cancelled: true, steps: r.losses.length, losses: r.losses, files: null };
      const files = stageFiles(r);
      // the event gets a copy (a few MB at most); the result takes the buffers themselves
      const done: DoneEvent = { type: 'done', files, steps: r.losses.length, losses: r.losses };
      await onEvent(done);
      const buffers = [...new Set(Object.values(files).map((b) => b.buffer as ArrayBuffer))];
      return Comlink.transfer({ cancelled: false, steps: r.losses.length, losses: r.losses, files }, buffers);
    } catch (e) {
      await watched?.close();
      const err = await this.runError(e, step, batch);
      await this.report(onEvent, err);
      throw err;
    } finally {
      this.running = false;
      this.paused = false;
      this.abort = null;
      this.wake?.();
      this.wake = null;
    }
  }

  private async report(onEvent: (e: TrainerEvent) => unknown, err: unknown): Promise<void> {
    try {
      await onEvent({ type: 'error', error: toPlainError(err) });
    } catch {
      // the listener is gone (page closed): the rejection still reports it
    }
  }

  /**
   * A big student opened for this run goes onto the GPU now (its plan fitted): whatever model the
   * worker held is freed first, the load reports progress and Cancel stops it (false: cancelled,
   * nothing of it left). Its inference plan is the smallest (the trainer has no KV cache).
   */
  private async loadForRun(onEvent: (e: TrainerEvent) => unknown, signal: AbortSignal): Promise<boolean> {
    const o = this.student;
    if (!o?.big || !this.rt) return true;
    if (this.rt.gpu.state !== 'ready') await this.init(this.gpuObject); // a lost device: a fresh one
    const rt = this.rt;
    if (rt.modelInfo?.key === o.key) return true;
    rt.unload();
    // the training plan checked the budget; the load's own (inference) plan keeps only its
    // binding-limit checks (a budget figure it could refuse under would be about inference)
    const src: StudentSource = {
      ...o.src,
      plan: {
        sequences: 1,
        context: Math.min(2, o.big.config.maxSeqLen),
        memoryBudget: Number.MAX_SAFE_INTEGER,
      },
    };
    try {
      await rt.load(src, {
        signal,
        onProgress: (p) => void Promise.resolve(onEvent({ type: 'load', ...p })).catch(() => {}),
      });
    } catch (e) {
      if ((e as Error | null)?.name === 'AbortError') return false;
      throw e;
    }
    this.source = src;
    return true;
  }

  /** Holds the run before its next step. */
  pause(): void {
    if (this.running) this.paused = true;
  }

  /** Lets a paused run go on. */
  resume(): void {
    this.paused = false;
    this.wake?.();
    this.wake = null;
  }

  /** Stops the run before its next step (a paused run too); `start` resolves with `cancelled`. */
  cancel(): void {
    this.abort?.abort();
    this.resume();
  }

  get isPaused(): boolean {
    return this.paused;
  }

  destroy(): void {
    this.cancel();
    this.rt?.destroy();
    this.rt = null;
  }

  private async gate(): Promise<void> {
    while (this.paused && !this.abort?.signal.aborted) await new Promise<void>((r) => (this.wake = r));
    this.rt?.gpu.assertReady();
  }

  /** The runtime with a model; after a lost device, a fresh device with the same model. */
  private async ready(): Promise<StudentRuntime> {
    if (this.rt && this.rt.gpu.state !== 'ready' && this.source) {
      await this.init(this.gpuObject);
      await this.rt.load(this.source);
    }
    if (!this.rt?.modelInfo)
      throw new EngineError('BAD_ARGUMENT', 'No student model is loaded yet: load one before training.');
    return this.rt;
  }

  /**
   * Any failure while the device is lost is the device loss (the app resumes from a checkpoint).
   * A device lost mid-step fails the work in flight (a readback's map) before `device.lost`
   * settles: a failure that is not the engine's own waits a moment for it. Out of memory says
   * what to do in training's terms.
   */
  private async runError(e: unknown, step: number | null, batch: number): Promise<unknown> {
    if (e instanceof EngineError && e.code === 'OUT_OF_MEMORY')
      return new EngineError(
        'OUT_OF_MEMORY',
        `${step === null ? 'Setting up the run' : `Training step ${step}`} (batch ${batch}) needed more GPU ` +
          'memory than is free; nothing of it was kept. The run is paused at its last checkpoint: close other ' +
          'GPU-heavy tabs, then Resume goes on from there on a fresh GPU device. If it runs out again, cancel ' +
          'and start the run with a smaller batch.',
        { cause: e },
      );
    const gpu = this.rt?.gpu;
    if (gpu && (e instanceof EngineError ? gpu.state === 'lost' : await gpu.isLost()))
      return new EngineError(
        'DEVICE_LOST',
        `The GPU device was lost during training (${gpu.lostMessage || 'no reason given'}). ` +
          'Nothing of the run is lost: it is paused at its last checkpoint, and Resume goes on from there on a fresh GPU device.',
        { cause: e },
      );
    return e;
  }
}
