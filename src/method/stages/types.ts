/** The plain-data types of the method's stages. */
import type { BackendTensor } from '../../engine/backend/types.ts';
import type { LlamaModel } from '../../engine/model/llama.ts';
import type { LoraState } from '../../engine/model/lora.ts';
import type { NatState } from '../../engine/model/nat.ts';
import type { RankerHeadState } from '../../engine/model/ranker.ts';
import type { AdamWState } from '../../engine/train/adamw.ts';
import type { StageConfig, StageName } from './config.ts';
import type { Tokenizer } from './text.ts';

/** A (question, rationale) the teacher wrote; `correct` by our answer checking. */
export interface TrainItem {
  question: string;
  rationale: string;
}

export interface StageData {
  pos: readonly TrainItem[];
  neg: readonly TrainItem[];
}

/** Adapters a stage consumes (from earlier stages) or produces, as plain data. */
export interface StageAdapters {
  /** KD / MIX / NT / UL / CL / NCE student, or NAT's positive LoRA. */
  lora?: LoraState;
  /** NAT's negative LoRA (stage 1's output). */
  neg?: LoraState;
  nat?: NatState;
  rank?: LoraState;
  head?: RankerHeadState;
}

export interface StageProgress {
  step: number;
  steps: number;
  loss: number;
  gradNorm: number;
  lr: number;
  /** Loss tokens (or pairs) per second over this step. */
  rate: number;
  metrics: Record<string, number | number[]>;
}

export interface StageResult {
  stage: StageName;
  config: StageConfig;
  adapters: StageAdapters;
  losses: number[];
  /** Per-step figures: NAT `alpha` (mean α per layer), NCE `beta`, ranker `pair_acc`. */
  history: Record<string, (number | number[])[]>;
  cancelled: boolean;
}

export interface StageRun<T extends BackendTensor> {
  stage: StageName;
  model: LlamaModel<T>;
  tokenizer: Tokenizer;
  data: StageData;
  config?: Partial<StageConfig>;
  /** Inputs from earlier stages: `neg` for nat / linmix; `neg` + `nat` + `lora` (NAT's positive) for nce. */
  inputs?: StageAdapters;
  onProgress?: (p: StageProgress) => void;
  signal?: AbortSignal;
  /** Awaited before every step: a worker resolves it when the user resumes a paused run. */
  gate?: () => Promise<void>;
  /** Every `checkpointEvery` steps (and at the end), the state to resume from. */
  checkpointEvery?: number;
  onCheckpoint?: (c: StageCheckpoint) => Promise<void> | void;
  /** Continue a run from its last checkpoint (same stage, data, config and inputs). */
  resume?: StageCheckpoint;
}

/** Everything needed to continue a stage where it stopped: plain data, for IndexedDB. */
export interface StageCheckpoint {
  stage: StageName;
  /** Steps done. */
  step: number;
  config: StageConfig;
  /** The stage's own trainable adapters so far (as `StageResult.adapters`). */
  adapters: StageAdapters;
  optimizer: AdamWState;
  losses: number[];
  history: StageResult['history'];
}
