/**
 * A LLaMA model's float32 weights, laid out as in llama2.c's checkpoint: every matrix row-major
 * (out, in), so out = W·x, and the per-layer tensors of all L layers concatenated layer after layer
 * (layer l of wq starts at l·C·C). Loaders may hand out views into the file's buffer.
 */
import { EngineError } from '../errors.ts';
import { kvDim, type LlamaConfig } from './config.ts';

export interface LlamaWeightsF32 {
  tokenEmbedding: Float32Array; // (V, C)
  rmsAtt: Float32Array; // (L, C)
  wq: Float32Array; // (L, C, C)        NH·HS = C
  wk: Float32Array; // (L, NKV·HS, C)
  wv: Float32Array; // (L, NKV·HS, C)
  wo: Float32Array; // (L, C, C)
  rmsFfn: Float32Array; // (L, C)
  w1: Float32Array; // (L, H, C)
  w2: Float32Array; // (L, C, H)
  w3: Float32Array; // (L, H, C)
  rmsFinal: Float32Array; // (C)
  wcls: Float32Array; // (V, C); the same object as tokenEmbedding when config.sharedClassifier
}

export type WeightName = keyof LlamaWeightsF32;

/** The tensors in llama2.c's file order (wcls last: after the legacy freq_cis, and only when unshared). */
export const WEIGHT_NAMES: readonly WeightName[] = [
  'tokenEmbedding',
  'rmsAtt',
  'wq',
  'wk',
  'wv',
  'wo',
  'rmsFfn',
  'w1',
  'w2',
  'w3',
  'rmsFinal',
  'wcls',
];

/** Element count of every tensor for config c. */
export function weightSizes(c: LlamaConfig): Record<WeightName, number> {
  const { dim: C, hiddenDim: H, nLayers: L, vocabSize: V } = c;
  const KV = kvDim(c);
  return {
    tokenEmbedding: V * C,
    rmsAtt: L * C,
    wq: L * C * C,
    wk: L * KV * C,
    wv: L * KV * C,
    wo: L * C * C,
    rmsFfn: L * C,
    w1: L * H * C,
    w2: L * C * H,
    w3: L * H * C,
    rmsFinal: C,
    wcls: V * C,
  };
}

/** Throws SHAPE_MISMATCH unless every tensor has the size config c asks for. */
export function checkWeights(c: LlamaConfig, w: LlamaWeightsF32): void {
  const sizes = weightSizes(c);
  for (const name of WEIGHT_NAMES) {
    if (w[name].length !== sizes[name]) {
      throw new EngineError(
        'SHAPE_MISMATCH',
        `weight ${name} has ${w[name].length} values but the config needs ${sizes[name]}: the weights belong to another model.`,
      );
    }
  }
  if (c.sharedClassifier && w.wcls !== w.tokenEmbedding) {
    throw new EngineError(
      'SHAPE_MISMATCH',
      'config.sharedClassifier is true but wcls is not tokenEmbedding: pass the same array for both, or set sharedClassifier to false.',
    );
  }
}
