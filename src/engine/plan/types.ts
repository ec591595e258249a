// The memory planner's requests, results and block layouts (src/engine/plan.ts).
import { EngineError } from '../errors.ts';
import { type LlamaConfig } from '../model/config.ts';
import { type LinearSite, type LoraTarget } from '../model/llama.ts';

export const GiB = 2 ** 30;

/** Storage of a weight tensor. */
export type WeightType = 'f32' | 'f16' | 'q8_0' | 'q4_0' | 'q4_k' | 'q6_k';
/** Storage of activations and the KV cache at inference. */
export type ActDType = 'f32' | 'f16';

/** Values per block and bytes per block of each storage type (GGUF layouts, ggml-common.h). */
export const WEIGHT_LAYOUT: Readonly<
  Record<WeightType, { readonly values: number; readonly bytes: number }>
> = {
  f32: { values: 1, bytes: 4 },
  f16: { values: 1, bytes: 2 },
  q8_0: { values: 32, bytes: 34 },
  q4_0: { values: 32, bytes: 18 },
  q4_k: { values: 256, bytes: 144 },
  q6_k: { values: 256, bytes: 210 },
};

/**
 * The storage type of each weight tensor. `matrices` covers every 2-D weight (token embedding,
 * classifier, the seven layer matrices) unless a class or a tensor says otherwise; norms are f32
 * unless `norm` says otherwise. Q4_K_M files, for instance, are
 * `{ matrices: 'q4_k', wcls: 'q6_k', tensors: { 'layers.0.wv': 'q6_k', ... } }`.
 */
export interface WeightTypes {
  matrices: WeightType;
  tokenEmbedding?: WeightType;
  wcls?: WeightType;
  norm?: WeightType;
  sites?: Partial<Record<LinearSite, WeightType>>;
  /** By tensor name (our names: tok_embeddings, output, norm, layers.N.wq … layers.N.ffn_norm). */
  tensors?: Readonly<Record<string, WeightType>>;
}

/**
 * What the device allows. WebGPU reports the two buffer limits but not how much memory the GPU
 * has: `memoryBudget` is the user's figure; without it the planner assumes DEFAULT_MEMORY_BUDGET.
 */
export interface DeviceLimits {
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
  memoryBudget?: number;
}

/** WebGPU's default limits (what a device gets without asking for more). */
export const WEBGPU_DEFAULT_LIMITS: DeviceLimits = {
  maxBufferSize: 268_435_456,
  maxStorageBufferBindingSize: 134_217_728,
};

/**
 * The budget assumed when the user gives none: 4 GiB, which most GPUs that run WebGPU at all have
 * to spare (integrated GPUs share system memory; 4 GB laptop GPUs exist). A plan made with it says
 * so, and its refusals tell the user to set their real figure.
 */
export const DEFAULT_MEMORY_BUDGET = 4 * GiB;

/** A LoRA adapter's shape (dropout only matters for training: it saves a masked copy per site). */
export interface LoraSpec {
  rank: number;
  targets: readonly LoraTarget[];
  /** Default: METHOD.md's 0.05 (DEFAULT_LORA). */
  dropout?: number;
}

export interface PlanBase {
  config: LlamaConfig;
  weights: WeightTypes;
  limits: DeviceLimits;
}

/** Inference with the KV-cache runner: `sequences` slots (m) × `context` positions. */
export interface InferenceRequest extends PlanBase {
  kind: 'inference';
  sequences: number;
  context: number;
  /** Activations and KV cache; f16 needs the `shader-f16` feature. Default f32. */
  act?: ActDType;
  /**
   * The KV cache alone, when it differs from `act`: LlamaRunner's `kv` option, whose f16 (pairs
   * packed in u32 words) needs no GPU feature. Default: `act`.
   */
  kv?: ActDType;
  /** Rows per forward chunk (the runner's maxRows): default max(64, sequences). */
  maxRows?: number;
  /** LoRA adapters loaded for inference (e.g. the positive and negative ones). */
  adapters?: readonly LoraSpec[];
}

/**
 * What a training step runs besides its one trained LoRA (METHOD.md): NAT trains the positive
 * LoRA and the integration unit (width `du`) beside the frozen negative LoRA; NCE trains a student
 * LoRA and runs the frozen NAT model (positive and negative LoRA, unit) and the negative model on
 * each micro-batch; the linear mix trains the positive LoRA beside the frozen negative one.
 */
export type TrainVariant =
  | { kind: 'lora' }
  | { kind: 'nat'; du: number; frozen?: FrozenSpecs }
  | { kind: 'nce'; du: number; frozen?: FrozenSpecs }
  | { kind: 'linmix'; frozen?: FrozenSpecs };

/**
 * The frozen adapters' shapes where they are known (the run's inputs); each one missing is taken to
 * have the trained LoRA's. `neg`: the negative LoRA (NAT, the linear mix, NCE); `pos`: NCE's NAT
 * positive LoRA; the NAT unit sits on `neg`'s targets (as the NAT stage builds it).
 */
export interface FrozenSpecs {
  pos?: LoraSpec;
  neg?: LoraSpec;
}

/** One LoRA training micro-batch: `batch` sequences × `seq` tokens, AdamW. */
export interface TrainingRequest extends PlanBase {
  kind: 'training';
  batch: number;
  seq: number;
  lora: LoraSpec;
  /** Gradient checkpointing: keep the residual stream at layer boundaries, re-run one layer at a time. */
  recompute: boolean;
  /** Rows of logits computed at a time (default: all batch·seq rows at once). */
  logitsChunkRows?: number;
  /** Default: one LoRA by likelihood (KD, Neg and the baselines). */
  variant?: TrainVariant;
}

export type PlanRequest = InferenceRequest | TrainingRequest;

/** Bytes per item; `total` is their sum. */
export interface PlanItems {
  weights: number;
  kv: number;
  activations: number;
  logits: number;
  adapters: number;
  optimizer: number;
  gradients: number;
  recompute: number;
  scratch: number;
  total: number;
}

export const ITEM_NAMES: readonly Exclude<keyof PlanItems, 'total'>[] = [
  'weights',
  'kv',
  'activations',
  'logits',
  'adapters',
  'optimizer',
  'gradients',
  'recompute',
  'scratch',
];

/** Tensors (`count` of them, alike) stored in `parts` buffers of whole rows each. */
export interface SplitTensor {
  /** Name, with `*` for the layer index when count > 1 (e.g. `layers.*.w1`, `kcache.*`). */
  name: string;
  count: number;
  type: string;
  rows: number;
  rowBytes: number;
  bytes: number;
  parts: number;
  rowsPerPart: number;
}

/** A buffer that must be bound whole (or a single row) and is larger than one binding. */
export interface OversizeTensor {
  name: string;
  /** Bytes of the smallest piece that must be bound whole (the tensor, or one row of it). */
  bytes: number;
  limit: number;
  /** true: even one row (one sequence's cache, one matrix row) is over the limit. */
  row: boolean;
}

/** One tensor a training step allocates (label with `l.` for the layer index; `count` alike). */
export interface TensorLine {
  label: string;
  bytes: number;
  count: number;
  phase: 'forward' | 'backward';
}

export interface TrainingDetail {
  /** batch · seq */
  tokens: number;
  adapterParams: number;
  /** One layer (not the first: its input needs no gradient) — what its forward keeps. */
  layerForward: number;
  /** … and what its backward allocates (activation gradients, temporaries, its input's gradient). */
  layerBackward: number;
  /**
   * The first layer's forward + backward. Without recompute it is smaller than a later layer's (its
   * input needs no gradient); with recompute it is counted as a later layer (the conservative figure).
   */
  firstLayer: number;
  /** Final norm, classifier, cross-entropy: forward + backward, logits included. */
  head: number;
  /** Recompute: the residual stream at the L+1 layer boundaries (f32). */
  checkpoints: number;
  /** Recompute: the gradient of the layer's output carried in from the layer above. */
  carried: number;
  /**
   * Recompute, NCE: the live bytes at the frozen models' forwards' peak (their last layer), when
   * the step's peak may be there rather than in the student's backward; else 0.
   */
  frozenPeak: number;
  /** The four u32/f32 batch inputs. */
  batchInputs: number;
  /** What the buffer pool adds by rounding each tape buffer up to its bucket (gpu/pool.ts). */
  poolSlack: number;
  layerTensors: TensorLine[];
  headTensors: TensorLine[];
}

export type Suggestion =
  | { kind: 'sequences'; sequences: number; total: number; text: string }
  | { kind: 'context'; context: number; total: number; text: string }
  | { kind: 'maxRows'; maxRows: number; total: number; text: string }
  | { kind: 'kvF16'; total: number; text: string }
  | { kind: 'recompute'; total: number; text: string }
  | { kind: 'batch'; batch: number; total: number; text: string }
  | { kind: 'seq'; seq: number; total: number; text: string }
  | { kind: 'logitsChunk'; rows: number; total: number; text: string }
  | { kind: 'quantization'; type: WeightType; total: number; text: string };

export interface Plan {
  request: PlanRequest;
  items: PlanItems;
  budget: number;
  /** true: no memoryBudget was given and DEFAULT_MEMORY_BUDGET was assumed. */
  budgetAssumed: boolean;
  /** min(maxBufferSize, maxStorageBufferBindingSize): the largest buffer a kernel can bind. */
  bindingLimit: number;
  splits: SplitTensor[];
  oversize: OversizeTensor[];
  training: TrainingDetail | null;
  verdict: 'ok' | 'refused';
  /** The refusal (LIMIT_EXCEEDED or OUT_OF_MEMORY), null when the plan fits. */
  error: EngineError | null;
  suggestions: Suggestion[];
}

export const fmtInt = (n: number) => n.toLocaleString('en-US');
