/**
 * Planning a training run, on the CPU (no GPU device): the data as the student's tokenizer reads it
 * (`measureItems`, `checkStageData`: unreadable and too long examples left out and counted) and the
 * memory planner's verdict on one LoRA step (`prepareRun`). `TrainPlanner` is the Train view's
 * planner worker; the trainer (trainer.ts) checks the same plan on its own device before a run.
 *
 * @example
 *   const p = new TrainPlanner();
 *   await p.open({ gguf: file, key: 'gguf:1', name: 'llama-2-7b' });
 *   const r = await p.plan({ stage: 'kd', data, config: { recompute: true } });
 *   r.data.pos.kept; // examples of D_pos trained on
 *   r.plan?.verdict; // 'ok' | 'refused' (with the planner's suggestions)
 */
import { EngineError } from '../../engine/errors.ts';
import { CharTokenizer } from '../../engine/io/chartok.ts';
import type { LlamaConfig } from '../../engine/model/config.ts';
import type { LoraTarget } from '../../engine/model/llama.ts';
import { defaultNatWidth } from '../../engine/model/nat.ts';
import type { FrozenSpecs, TrainVariant } from '../../engine/plan.ts';
import { paramCount } from '../../engine/model/config.ts';
import { DEFAULT_STAGE, STAGES, type StageConfig, type StageName } from '../stages/config.ts';
import { encodeExample } from '../stages/text.ts';
import type { StageCheckpoint, StageData, TrainItem } from '../stages/stages.ts';
import {
  OUR_WEIGHTS,
  planTraining,
  unreadableChars,
  type BigStudent,
  type PlanLimits,
  type StudentTokenizer,
  type TrainPlanView,
} from './big-student.ts';
import { openGgufStudent } from './gguf-student.ts';
import { openMlcStudent } from './mlc-student.ts';
import { inputShapes, type InputShapes } from './stage-inputs.ts';
import { isBigSource, readOurStudent, type RuntimeOptions, type StudentSource } from './runtime.ts';

/** What `plan` needs: the run's stage, data and settings as `start` will get them. */
export interface TrainPlanRequest {
  stage: StageName;
  /** D_pos and D_neg (the training side of the held-out split). */
  data: StageData;
  /** Over DEFAULT_STAGE; ignored on resume (the checkpoint's config holds). */
  config: Partial<StageConfig>;
  /** Continue from this checkpoint (same stage, data and inputs). */
  resume?: StageCheckpoint;
  /** Names `data` (the same key, the same data): it is tokenized once per student and key. */
  dataKey?: string;
  /**
   * At most this many positions per example (its tokens − 1); longer examples are left out and
   * counted (`checkStageData`). Default and at most: the model's context.
   */
  maxSeq?: number;
  /**
   * The shapes of the frozen adapters in the earlier stage's set the run builds on (`inputShapes`
   * of its files): without them the plan counts them with this run's rank, targets and width.
   */
  inputShapes?: InputShapes;
  /** The GPU memory the user says can be used, in bytes (the planner assumes 4 GiB without). */
  memoryBudget?: number;
}

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
export function sourceKey(src: StudentSource): string {
  return (
    src.key ??
    src.modelUrl ??
    src.ggufUrl ??
    src.mlcUrl ??
    (src.gguf ? `file:${(src.gguf as File).name ?? ''}:${src.gguf.size}` : `bytes:${src.name ?? 'model'}`)
  );
}

/** What the plan of a stage's step holds besides its one trained LoRA (said on the Train card). */
const STAGE_NOTES: Partial<Record<StageName, string>> = {
  nat:
    'Counted with the positive LoRA: the frozen negative LoRA and the integration unit (trained, with its optimizer state). ' +
    "The positive LoRA and the unit sit on the negative LoRA's layers, whatever is ticked here.",
  linmix:
    "Counted with the positive LoRA: the frozen negative LoRA. The positive LoRA sits on the negative LoRA's layers, whatever is ticked here.",
  nce:
    "Counted with the student's LoRA: the frozen NAT model (its two LoRAs and unit) and negative model, " +
    'their forwards on each micro-batch and the logits they keep.',
};

/**
 * The planner's name for what a stage's step runs besides its trained LoRA. The frozen adapters
 * have the shapes they were trained with when the input set's are given (`shapes`: the negative
 * LoRA's rank and targets, NCE's NAT positive LoRA and unit width), else the shapes this config
 * would give them.
 */
export function stageVariant(
  stage: StageName,
  c: StageConfig,
  model: LlamaConfig,
  shapes?: InputShapes,
): TrainVariant {
  const du = c.du ?? defaultNatWidth(model);
  const frozen: FrozenSpecs = {
    ...(shapes?.neg ? { neg: shapes.neg } : {}),
    ...(shapes?.pos ? { pos: shapes.pos } : {}),
  };
  const given = Object.keys(frozen).length ? { frozen } : {};
  switch (stage) {
    case 'nat':
      return { kind: 'nat', du, ...given };
    case 'nce':
      return { kind: 'nce', du: shapes?.du ?? du, ...given };
    case 'linmix':
      return { kind: 'linmix', ...given };
    default:
      return { kind: 'lora' };
  }
}

/**
 * The trained LoRA's targets: NAT's and the linear mix's positive LoRA sits where the negative one
 * does (as the stages build it), whatever the config says; every other stage's, the config's.
 */
function trainedTargets(stage: StageName, c: StageConfig, shapes?: InputShapes): LoraTarget[] {
  return (stage === 'nat' || stage === 'linmix') && shapes?.neg ? [...shapes.neg.targets] : c.targets;
}

/** What a run would train on, the plan of one step, and the refusal (if any) to throw. */
export interface Prepared {
  data: StageData;
  result: TrainPlanResult;
  error: EngineError | null;
}

/**
 * The data as `tok` reads it (lengths cached per data key in `lengths`) and the planner's verdict
 * on one LoRA step of `s` on a device with `limits`: what `plan` answers and `start` checks.
 */
export function prepareRun(
  student: TrainStudent,
  s: { config: LlamaConfig; tok: StudentTokenizer; weights: BigStudent<unknown>['weights'] },
  lengths: Map<string, { pos: Int32Array; neg: Int32Array }>,
  limits: PlanLimits,
  req: TrainPlanRequest,
  /** The input set's frozen adapters (default: the request's `inputShapes`). */
  shapes: InputShapes | undefined = req.inputShapes,
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
      targets: trainedTargets(req.stage, c, shapes),
      dropout: c.dropout,
      recompute: c.recompute ?? false,
      variant: stageVariant(req.stage, c, config, shapes),
      ...(req.memoryBudget !== undefined ? { memoryBudget: req.memoryBudget } : {}),
    },
  );
  return { data, result: { student, data: check, plan: view, problem: null, note }, error };
}

/** The largest buffer one kernel binds on a device with `l`. */
const bindingOf = (l: PlanLimits): number =>
  Math.min(l['maxBufferSize'] ?? Infinity, l['maxStorageBufferBindingSize'] ?? Infinity);

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
    // our safetensors model: its checkpoint and tokenizer, read as the runtime reads them (no upload)
    const { name, config, tokenizer: tok } = await readOurStudent(src);
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

  /**
   * The shapes of the frozen adapters in an earlier stage's set (its files), for `stage`: what a
   * plan request's `inputShapes` takes. Refused with the reason when the set is not one `stage` builds on.
   */
  async inputShapes(stage: StageName, files: Record<string, ArrayBuffer>): Promise<InputShapes> {
    await Promise.resolve();
    return inputShapes(stage, files);
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
