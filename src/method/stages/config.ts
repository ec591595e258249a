/** Stage settings with METHOD.md's defaults (§0–4). */
import type { LoraTarget } from '../../engine/model/llama.ts';

export type StageName = 'kd' | 'neg' | 'mix' | 'nat' | 'linmix' | 'nce' | 'rank' | 'nt' | 'ul' | 'cl';
export const STAGES: readonly StageName[] = [
  'kd',
  'neg',
  'mix',
  'nat',
  'linmix',
  'nce',
  'rank',
  'nt',
  'ul',
  'cl',
];

export const STAGE_INFO: Record<StageName, string> = {
  kd: 'CoT KD: maximum likelihood on D_pos',
  neg: 'negative LoRA: maximum likelihood on D_neg (NAT stage 1)',
  mix: 'MIX: maximum likelihood on D_pos ∪ D_neg',
  nat: 'NAT stage 2: positive LoRA + integration unit on D_pos, negative LoRA frozen',
  linmix: 'linear mix ablation: out = base + 2·Δ_pos − Δ_neg, positive LoRA on D_pos',
  nce: 'NCE: a fresh LoRA distilled from the NAT model, weighted by β from the negative model',
  rank: 'ranker: rank LoRA + head, cubic pairwise loss on (positive, negative) pairs',
  nt: 'NT: likelihood on D_pos minus γ · likelihood on D_neg',
  ul: 'UL: likelihood on D_pos plus γ · unlikelihood on D_neg',
  cl: 'CL: likelihood on D_pos plus a margin between positive and negative log-likelihoods',
};

export interface StageConfig {
  steps: number;
  /** Sequences per step (pairs for rank and cl). */
  batchSize: number;
  /** Sequences per micro-batch (gradient accumulation); default: the whole batch. */
  microBatch?: number;
  lr: number;
  weightDecay: number;
  maxGradNorm: number;
  /** Warm-up steps as a fraction of `steps`. */
  warmup: number;
  rank: number;
  alpha: number;
  dropout: number;
  targets: LoraTarget[];
  /** NAT unit width (default min(128, dim)). */
  du?: number;
  /** NT / UL weight of the negative term. */
  gamma: number;
  /** CL margin. */
  margin: number;
  lossOnPrompt: boolean;
  seed: number;
  /**
   * Activation recompute (gradient checkpointing, TrainerOptions): needed for 7B-sized models at
   * hundreds of tokens; the built-in models fit without it. Default false.
   */
  recompute?: boolean;
}

export const DEFAULT_STAGE: StageConfig = {
  steps: 200,
  batchSize: 16,
  lr: 3e-4,
  weightDecay: 0,
  maxGradNorm: 1,
  warmup: 0.05,
  rank: 8,
  alpha: 16,
  dropout: 0.05,
  targets: ['q', 'v'],
  gamma: 0.05,
  margin: 1,
  lossOnPrompt: false,
  seed: 1,
};
