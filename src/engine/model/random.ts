/**
 * Random LLaMA weights with sensible scales (for benchmarks and tests that need a model of a
 * given shape, e.g. a dim-512 model or LLaMA-7b layer shapes): matrices uniform ±1/√in, norms 1.
 */
import { uniformStream } from './lora.ts';
import { weightSizes, type LlamaWeightsF32 } from './weights.ts';
import type { LlamaConfig } from './config.ts';

export function randomLlamaWeights(c: LlamaConfig, seed = 1): LlamaWeightsF32 {
  const rnd = uniformStream(seed);
  const sizes = weightSizes(c);
  const fill = (n: number, scale: number) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = rnd() * scale;
    return a;
  };
  const ones = (n: number) => new Float32Array(n).fill(1);
  const C = c.dim,
    H = c.hiddenDim;
  const tokenEmbedding = fill(sizes.tokenEmbedding, 1);
  return {
    tokenEmbedding,
    rmsAtt: ones(sizes.rmsAtt),
    rmsFfn: ones(sizes.rmsFfn),
    rmsFinal: ones(sizes.rmsFinal),
    wq: fill(sizes.wq, 1 / Math.sqrt(C)),
    wk: fill(sizes.wk, 1 / Math.sqrt(C)),
    wv: fill(sizes.wv, 1 / Math.sqrt(C)),
    wo: fill(sizes.wo, 1 / Math.sqrt(C)),
    w1: fill(sizes.w1, 1 / Math.sqrt(C)),
    w3: fill(sizes.w3, 1 / Math.sqrt(C)),
    w2: fill(sizes.w2, 1 / Math.sqrt(H)),
    wcls: c.sharedClassifier ? tokenEmbedding : fill(sizes.wcls, 1 / Math.sqrt(C)),
  };
}
