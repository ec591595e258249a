/**
 * The LLaMA architecture's hyperparameters (llama2.c's `Config`, plus the two constants run.c
 * hard-codes), with the checks every loader and builder runs before allocating anything.
 *
 * @example
 *   const c: LlamaConfig = { dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512,
 *     maxSeqLen: 512, ropeTheta: 10000, normEps: 1e-5, sharedClassifier: true };
 *   validateConfig(c); headSize(c); // 8
 */
import { EngineError } from '../errors.ts';

export interface LlamaConfig {
  /** C: the residual stream width. */
  dim: number;
  /** the SwiGLU width (w1, w3 rows). */
  hiddenDim: number;
  /** L */
  nLayers: number;
  /** NH: query heads. */
  nHeads: number;
  /** NKV: key/value heads (< NH is grouped-query attention). */
  nKvHeads: number;
  /** V */
  vocabSize: number;
  /** T max: the KV cache length and RoPE's table size. */
  maxSeqLen: number;
  /** RoPE base (10000 in llama2.c). */
  ropeTheta: number;
  /** RMSNorm epsilon (1e-5 in llama2.c). */
  normEps: number;
  /** true: the classifier is the token embedding (wcls === tokenEmbedding). */
  sharedClassifier: boolean;
}

/** Sizes beyond these are not a model this engine can hold; they mean a corrupt header. */
const MAX = {
  dim: 1 << 16,
  hiddenDim: 1 << 18,
  nLayers: 1024,
  nHeads: 1024,
  vocabSize: 1 << 21,
  maxSeqLen: 1 << 20,
};

/**
 * LLaMA-7B's shapes (Touvron et al. 2023; llama-7b / llama-2-7b, LLaMA's context of 2,048): what
 * the planner's figures, the 7B-shaped tests and the benchmarks start from (spread and override).
 */
export const LLAMA_7B: Readonly<LlamaConfig> = {
  dim: 4096,
  hiddenDim: 11008,
  nLayers: 32,
  nHeads: 32,
  nKvHeads: 32,
  vocabSize: 32000,
  maxSeqLen: 2048,
  ropeTheta: 10000,
  normEps: 1e-5,
  sharedClassifier: false,
};

/**
 * Throws EngineError(code) when c is not a well-formed LLaMA config. Loaders pass 'BAD_FILE' (a
 * header says nonsense), builders keep the default 'BAD_ARGUMENT'. `source` names the file or caller.
 */
export function validateConfig(
  c: LlamaConfig,
  code: 'BAD_FILE' | 'BAD_ARGUMENT' = 'BAD_ARGUMENT',
  source = 'config',
): void {
  const fail = (what: string): never => {
    const fix =
      code === 'BAD_FILE'
        ? 'the file is not a valid model; check that you picked the right file'
        : 'fix the model configuration';
    throw new EngineError(code, `${source}: ${what}: ${fix}.`);
  };
  const ints: (keyof typeof MAX | 'nKvHeads')[] = [
    'dim',
    'hiddenDim',
    'nLayers',
    'nHeads',
    'nKvHeads',
    'vocabSize',
    'maxSeqLen',
  ];
  for (const k of ints) {
    const v = c[k];
    if (!Number.isInteger(v) || v <= 0) fail(`${k} is ${v}, expected a positive integer`);
    const max = k === 'nKvHeads' ? MAX.nHeads : MAX[k];
    if (v > max) fail(`${k} is ${v}, larger than any model this engine supports (${max})`);
  }
  if (c.dim % c.nHeads !== 0) fail(`dim ${c.dim} is not a multiple of nHeads ${c.nHeads}`);
  if (c.nHeads % c.nKvHeads !== 0) fail(`nHeads ${c.nHeads} is not a multiple of nKvHeads ${c.nKvHeads}`);
  if ((c.dim / c.nHeads) % 2 !== 0)
    fail(`head size ${c.dim / c.nHeads} is odd; RoPE rotates pairs of elements`);
  if (!(Number.isFinite(c.ropeTheta) && c.ropeTheta > 0))
    fail(`ropeTheta is ${c.ropeTheta}, expected a positive number`);
  if (!(Number.isFinite(c.normEps) && c.normEps > 0))
    fail(`normEps is ${c.normEps}, expected a positive number`);
}

/** HS = dim / NH. */
export function headSize(c: LlamaConfig): number {
  return c.dim / c.nHeads;
}

/** NKV·HS: the width of k and v per token. */
export function kvDim(c: LlamaConfig): number {
  return (c.dim * c.nKvHeads) / c.nHeads;
}

/** Number of trainable parameters (the classifier counted once when shared). */
export function paramCount(c: LlamaConfig): number {
  const { dim: C, hiddenDim: H, nLayers: L, vocabSize: V } = c;
  const perLayer = 2 * C + 2 * C * C + 2 * C * kvDim(c) + 3 * C * H;
  return V * C + L * perLayer + C + (c.sharedClassifier ? 0 : V * C);
}
