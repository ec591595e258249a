/**
 * Whether a set of adapters was trained for a model of this shape — read from the adapters'
 * headers, so nothing is allocated. Solve refuses such a set (`SHAPE_MISMATCH`); Compare leaves
 * it out of its lists.
 */
import type { LlamaConfig } from '../../engine/model/config.ts';
import type { StageAdapters } from '../stages/types.ts';

export interface AdapterMismatch {
  /** What does not fit, e.g. `"KD" was trained for another model (dim 64, this model has 4096).` */
  message: string;
  /** What to do about it. */
  hint: string;
}

/** null when every part of `a` fits `config`; else the first mismatch. `what` names the set. */
export function adapterMismatch(config: LlamaConfig, a: StageAdapters, what: string): AdapterMismatch | null {
  const want: Record<string, number> = {
    dim: config.dim,
    hiddenDim: config.hiddenDim,
    nLayers: config.nLayers,
    kvDim: (config.dim * config.nKvHeads) / config.nHeads,
  };
  for (const s of [a.lora, a.neg, a.rank, a.nat]) {
    if (!s) continue;
    const model = s.model as Record<string, number | undefined>;
    for (const [k, v] of Object.entries(want))
      if (model[k] !== undefined && model[k] !== v)
        return {
          message: `${what} was trained for another model (${k} ${model[k]}, this model has ${v}).`,
          hint: 'Pick adapters made for this model, or load the model they were made for (Models).',
        };
  }
  if (a.head && a.head.dim !== config.dim)
    return {
      message: `${what}: its ranker head reads width ${a.head.dim}, this model has ${config.dim}.`,
      hint: 'Pick a ranker made for this model.',
    };
  return null;
}
