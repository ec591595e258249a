/**
 * A big student: a LLaMA the user brings (a GGUF file: gguf-student.ts; web-llm's MLC build in the
 * browser's Cache Storage: mlc-student.ts), planned before it is loaded. Both sources open to a
 * `BigStudent` — config, SentencePiece tokenizer, the weight types exactly as its loader will place
 * them on the GPU, facts for the Models view, and `load` — and share what is here: the memory plan
 * (src/engine/plan.ts) for `sequences` × `context` with an f16 KV cache against the device's limits
 * and the user's budget, as plain data (`PlanView`), and the refusal with the planner's suggestion,
 * thrown before anything is allocated.
 *
 * @example
 *   const { view, error } = planBig(gpu.limits, student, { sequences: 16, context: 512 });
 *   view.verdict; // 'ok' | 'refused'
 *   if (error) throw error; // LIMIT_EXCEEDED / OUT_OF_MEMORY with "To fit: …"
 */
import type { GpuBackend } from '../../engine/backend/gpu.ts';
import { EngineError, formatBytes } from '../../engine/errors.ts';
import type { Tensor } from '../../engine/gpu/tensor.ts';
import { CharTokenizer } from '../../engine/io/chartok.ts';
import type { LoadProgress } from '../../engine/io/load-gguf.ts';
import type { SpmTokenizer } from '../../engine/io/spm.ts';
import type { KvType } from '../../engine/kvcache.ts';
import type { LlamaConfig } from '../../engine/model/config.ts';
import type { LlamaModel, LoraTarget } from '../../engine/model/llama.ts';
import {
  formatPlan,
  planMemory,
  type ActDType,
  type DeviceLimits,
  type InferenceRequest,
  type Plan,
  type PlanItems,
  type SplitTensor,
  type TrainingRequest,
  type TrainVariant,
  type WeightTypes,
} from '../../engine/plan.ts';

export type { LoadProgress };

/** Samples per question at most (Solve's m, and what a big model is planned for by default). */
export const MAX_SAMPLES = 32;
/** Positions per sample a big model is planned for by default: prompt + answer (Solve's default answer is 120 tokens). */
export const DEFAULT_CONTEXT = 512;
/** The KV cache type of a big model (planned for, and what Solve's runner then uses). */
export const BIG_KV: KvType = 'f16';

/** A tokenizer the method can use: generate()'s TextTokenizer plus `decode`. */
export type StudentTokenizer = CharTokenizer | SpmTokenizer;

/** What a big model (GGUF, MLC) must serve, for the memory planner. */
export interface BigPlanOptions {
  /** m: samples decoded at once (KV-cache slots). Default MAX_SAMPLES. */
  sequences?: number;
  /** Positions per sample, prompt included. Default min(DEFAULT_CONTEXT, the model's context). */
  context?: number;
  /** The GPU memory the user says can be used, in bytes; absent: the planner assumes 4 GiB. */
  memoryBudget?: number;
  /**
   * Activation type the Solve runner will use: f16 where the device has shader-f16 (the runtime
   * sets it, `StudentRuntime.act`). Default f32.
   */
  act?: ActDType;
}
/** The same options under the name the GGUF path had first. */
export type GgufPlanOptions = BigPlanOptions;

/** One class of tensors ('attn_q' for every blk.N.attn_q.weight, 'qkv_proj', 'token_embd', …). */
export interface TensorClass {
  name: string;
  count: number;
  /** Type in the file → tensors of this class stored in it (a Q4_K_M file mixes Q4_K and Q6_K). */
  file: Record<string, number>;
  /** What they become on the GPU: 'q4_0 (blocks as stored)', 'q8_0 (requantized)', 'f32'. */
  gpu: string[];
  /** Bytes on the GPU, all tensors of the class. */
  gpuBytes: number;
}
export type GgufTensorClass = TensorClass;

/**
 * The planner's verdict as plain data (an EngineError does not survive structured clone), whatever
 * it was for (a load: `PlanView`; a LoRA training step: `TrainPlanView`).
 */
export interface PlanVerdict<S> {
  items: PlanItems;
  budget: number;
  budgetAssumed: boolean;
  /** The largest buffer one kernel binds (min of maxBufferSize and maxStorageBufferBindingSize). */
  bindingLimit: number;
  splits: SplitTensor[];
  verdict: 'ok' | 'refused';
  error: { code: string; message: string } | null;
  suggestions: S[];
  /** formatPlan's table (for the CLI-minded and for logs). */
  text: string;
}

/** The planner's verdict on loading a model for `sequences` × `context`. */
export interface PlanView extends PlanVerdict<{
  kind: string;
  text: string;
  total: number;
  sequences?: number;
  context?: number;
}> {
  sequences: number;
  context: number;
  /** KV cache element type planned for (the Solve runner's). */
  kv: KvType;
  /** Activation type planned for (the Solve runner's). */
  act: ActDType;
}

/** How a load reports progress and is cancelled (per chunk or tensor read). */
export interface StudentLoadOptions {
  onProgress?: (p: LoadProgress) => void;
  /** An aborted load frees what it allocated and throws `signal.reason`. */
  signal?: AbortSignal;
}

/** A big model opened for planning and loading (the header / configuration read, nothing allocated). */
export interface BigStudent<F> {
  readonly format: 'gguf' | 'mlc';
  /** Names the source: opening the same key again reads nothing. */
  readonly key: string;
  /** The file or model, for messages ("llama-2-7b.Q4_0.gguf", "Llama-2-7b-chat-hf-q4f16_1-MLC"). */
  readonly what: string;
  /** The model's name when the source gives none. */
  readonly name: string;
  readonly config: LlamaConfig;
  readonly tokenizer: SpmTokenizer;
  /** Every weight as the loader places it on the GPU (the planner's input). */
  readonly weights: WeightTypes;
  /** What to pick when even the KV cache of one sample cannot be bound whole. */
  readonly smaller: string;
  facts(): F;
  load(be: GpuBackend, opts: StudentLoadOptions): Promise<LlamaModel<Tensor>>;
}

/** What a big model's source says, with the planner's verdict for the settings asked. */
export interface BigInspection<F> {
  facts: F;
  plan: PlanView;
}

/**
 * The characters of `text` a tokenizer cannot read: for the character tokenizer, those outside its
 * alphabet; for SentencePiece, those that become the unknown token (none with byte fallback, as in
 * LLaMA's vocabulary) or that it cannot encode at all.
 */
export function unreadableChars(tok: StudentTokenizer, text: string): string[] {
  const chars = [...new Set(text)];
  if (tok instanceof CharTokenizer) return chars.filter((c) => !tok.chars.includes(c));
  const unknown = (s: string): boolean => {
    try {
      return tok.unk !== null && tok.encode(s, false, false).includes(tok.unk);
    } catch {
      return true;
    }
  };
  return unknown(text) ? chars.filter(unknown) : [];
}

/** Whether every ASCII character and characters of each UTF-8 length read without the unknown token. */
export function hasByteFallback(tok: SpmTokenizer): boolean {
  let probe = '\u00e9\u4e2d\u{1F642}\uE000';
  for (let c = 0; c < 128; c++) probe += String.fromCharCode(c);
  return unreadableChars(tok, probe).length === 0;
}

/** The device limits the planner needs (Gpu.limits: maxBufferSize, maxStorageBufferBindingSize). */
export type PlanLimits = Readonly<Record<string, number | undefined>>;

/** A refusal unless `v` is a whole number from `lo` to `hi` (`what` names it for the student). */
function intIn(v: number, lo: number, hi: number, what: string): void {
  if (!(Number.isInteger(v) && v >= lo && v <= hi))
    throw new EngineError('BAD_ARGUMENT', `${what} is ${v}: choose a whole number from ${lo} to ${hi}.`);
}

/** The planner's limits: the device's (none given: unbounded) and the user's budget (checked: positive). */
function planLimits(limits: PlanLimits, memoryBudget: number | undefined): DeviceLimits {
  if (memoryBudget !== undefined && !(memoryBudget > 0))
    throw new EngineError(
      'BAD_ARGUMENT',
      `A memory budget of ${memoryBudget} bytes: give a positive figure, or none.`,
    );
  return {
    maxBufferSize: limits.maxBufferSize ?? Infinity,
    maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize ?? Infinity,
    ...(memoryBudget !== undefined ? { memoryBudget } : {}),
  };
}

/** What a plan view shows of `plan` whatever it was for: figures, splits, verdict and suggestions. */
function verdictOf<S>(plan: Plan, error: EngineError | null, suggestions: S[]): PlanVerdict<S> {
  return {
    items: plan.items,
    budget: plan.budget,
    budgetAssumed: plan.budgetAssumed,
    bindingLimit: plan.bindingLimit,
    splits: plan.splits,
    verdict: error ? 'refused' : 'ok',
    error: error ? { code: error.code, message: error.message } : null,
    suggestions,
    text: formatPlan(plan),
  };
}

/** The planner's request for loading `s` on a device with `limits`. */
function planRequest(
  limits: PlanLimits,
  s: Pick<BigStudent<unknown>, 'config' | 'weights'>,
  p: BigPlanOptions,
): InferenceRequest {
  const sequences = p.sequences ?? MAX_SAMPLES;
  const context = p.context ?? Math.min(DEFAULT_CONTEXT, s.config.maxSeqLen);
  intIn(sequences, 1, MAX_SAMPLES, 'The number of samples');
  intIn(
    context,
    2,
    s.config.maxSeqLen,
    `The context (positions per sample; this model reads at most ${s.config.maxSeqLen})`,
  );
  return {
    kind: 'inference',
    config: s.config,
    weights: s.weights,
    limits: planLimits(limits, p.memoryBudget),
    sequences,
    context,
    act: p.act ?? 'f32',
    kv: BIG_KV,
    maxRows: Math.max(64, sequences),
  };
}

/**
 * The plan for loading `s` with `p` on a device with `limits`, and, when refused, its error. A
 * weight over the binding limit is split by rows across buffers (backend/gpu.ts), a layer's KV
 * cache by sequences (infer/runner.ts): both are in the plan's `splits`.
 */
export function planBig(
  limits: PlanLimits,
  s: Pick<BigStudent<unknown>, 'config' | 'weights' | 'smaller'>,
  p: BigPlanOptions,
): { view: PlanView; error: EngineError | null } {
  const req = planRequest(limits, s, p);
  const plan = planMemory(req);
  const error = plan.error;
  const suggestions: PlanView['suggestions'] = plan.suggestions.map((x) => ({
    kind: x.kind,
    text: x.text,
    total: x.total,
    ...(x.kind === 'sequences' ? { sequences: x.sequences } : {}),
    ...(x.kind === 'context' ? { context: x.context } : {}),
  }));
  const view: PlanView = {
    sequences: req.sequences,
    context: req.context,
    kv: BIG_KV,
    act: req.act ?? 'f32',
    ...verdictOf(plan, error, suggestions),
  };
  return { view, error };
}

/**
 * A class table from per-tensor entries: how many, their types in the file, what they become on
 * the GPU and the bytes there (the Models view's "Tensors" table).
 */
export function tensorClasses(
  entries: Iterable<{ name: string; file: string; gpu: string; bytes: number }>,
): TensorClass[] {
  const classes = new Map<string, TensorClass>();
  for (const t of entries) {
    const c = classes.get(t.name) ?? { name: t.name, count: 0, file: {}, gpu: [], gpuBytes: 0 };
    c.count++;
    c.file[t.file] = (c.file[t.file] ?? 0) + 1;
    if (!c.gpu.includes(t.gpu)) c.gpu.push(t.gpu);
    c.gpuBytes += t.bytes;
    classes.set(t.name, c);
  }
  return [...classes.values()];
}

// ---------------------------------------------------------------------------------------------
// Training plans (the Train view; any student, big or ours)

/** What a LoRA training step is planned for (one micro-batch of `batch` sequences of `seq` positions). */
export interface TrainPlanOptions {
  /** Sequences on one tape: the stage's micro-batch (its batch when it has none). */
  batch: number;
  /** Positions per sequence: the longest example's tokens − 1 (the last token is only a target). */
  seq: number;
  rank: number;
  targets: readonly LoraTarget[];
  dropout?: number;
  /** Activation recompute (gradient checkpointing). */
  recompute: boolean;
  /** The GPU memory the user says can be used, in bytes; absent: the planner assumes 4 GiB. */
  memoryBudget?: number;
  /** What the stage runs besides the trained LoRA (NAT's unit, NCE's frozen models); default none. */
  variant?: TrainVariant;
}

/** A training suggestion the Train view can apply in one click (quantization only names a file to pick). */
export interface TrainSuggestion {
  kind: 'recompute' | 'batch' | 'seq' | 'quantization';
  text: string;
  total: number;
  /** kind 'batch': sequences per micro-batch. */
  batch?: number;
  /** kind 'seq': positions per sequence. */
  seq?: number;
}

/** The planner's verdict on a LoRA training step, as plain data. */
export interface TrainPlanView extends PlanVerdict<TrainSuggestion> {
  batch: number;
  seq: number;
  rank: number;
  targets: LoraTarget[];
  recompute: boolean;
}

/** Our own models' weights on the GPU (runtime.ts loads them as f32). */
export const OUR_WEIGHTS: WeightTypes = { matrices: 'f32' };

/**
 * The plan for a LoRA training step of `s` with `p` on a device with `limits`, and, when refused,
 * its error (LIMIT_EXCEEDED / OUT_OF_MEMORY) — thrown by the trainer before anything of the run is
 * allocated. The trainer computes all logits of a micro-batch at once, so the planner's "logits in
 * chunks" suggestion is left out (of the list and of the message).
 */
export function planTraining(
  limits: PlanLimits,
  s: Pick<BigStudent<unknown>, 'config' | 'weights'>,
  p: TrainPlanOptions,
): { view: TrainPlanView; error: EngineError | null } {
  intIn(p.batch, 1, 4096, 'The batch (sequences per micro-batch)');
  intIn(
    p.seq,
    1,
    s.config.maxSeqLen,
    `The sequence length (this model reads at most ${s.config.maxSeqLen} positions)`,
  );
  intIn(p.rank, 1, 1024, 'The LoRA rank');
  if (p.targets.length === 0)
    throw new EngineError(
      'BAD_ARGUMENT',
      'LoRA needs at least one target layer: tick one of q, k, v, o, gate, up, down.',
    );
  const req: TrainingRequest = {
    kind: 'training',
    config: s.config,
    weights: s.weights,
    limits: planLimits(limits, p.memoryBudget),
    batch: p.batch,
    seq: p.seq,
    lora: {
      rank: p.rank,
      targets: [...p.targets],
      ...(p.dropout !== undefined ? { dropout: p.dropout } : {}),
    },
    recompute: p.recompute,
    ...(p.variant ? { variant: p.variant } : {}),
  };
  const plan = planMemory(req);
  const suggestions: TrainSuggestion[] = [];
  for (const x of plan.suggestions) {
    if (x.kind === 'recompute') suggestions.push({ kind: 'recompute', text: x.text, total: x.total });
    else if (x.kind === 'batch')
      suggestions.push({ kind: 'batch', batch: x.batch, text: x.text, total: x.total });
    else if (x.kind === 'seq') suggestions.push({ kind: 'seq', seq: x.seq, text: x.text, total: x.total });
    else if (x.kind === 'quantization')
      suggestions.push({
        kind: 'quantization',
        text: `${x.text}: a more quantized file of this model`,
        total: x.total,
      });
  }
  let error = plan.error;
  if (error && suggestions.length !== plan.suggestions.length) {
    // the message lists every suggestion of the planner: say only what this trainer can do
    const all = ` To fit: ${plan.suggestions.map((x) => x.text).join('; or ')}.`;
    const kept = suggestions.length
      ? ` To fit: ${suggestions.map((x) => x.text).join('; or ')}.`
      : ` Nothing smaller of this step fits: the weights take ${formatBytes(plan.items.weights)}; choose a smaller model or a larger budget.`;
    error = new EngineError(error.code, error.message.replace(all, kept));
  }
  const view: TrainPlanView = {
    batch: p.batch,
    seq: p.seq,
    rank: p.rank,
    targets: [...p.targets],
    recompute: p.recompute,
    ...verdictOf(plan, error, suggestions),
  };
  return { view, error };
}
