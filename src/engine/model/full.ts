/**
 * Full fine-tuning (pre-training cross-checks, small models): every f32 weight of a model becomes a
 * trainable parameter whose value IS the model's tensor (updated in place by AdamW), with a
 * gradient buffer beside it. Quantized weights cannot be trained.
 */
import type { BackendTensor } from '../backend/types.ts';
import type { Param } from '../autograd/tape.ts';
import { EngineError } from '../errors.ts';
import type { TrainableWeights } from '../train/forward.ts';
import { LINEAR_SITES, type LlamaModel } from './llama.ts';

export interface FullParams<T extends BackendTensor> {
  params: Param<T>[];
  trainable: TrainableWeights<T>;
  destroy(): void;
}

/** Names follow llama2.c / our safetensors tensors: tokenEmbedding, layers.l.wq, ..., rmsFinal, wcls. */
export function fullParams<T extends BackendTensor>(model: LlamaModel<T>): FullParams<T> {
  const be = model.be;
  const map = new Map<T, Param<T>>();
  const params: Param<T>[] = [];
  const add = (t: T, name: string) => {
    if (map.has(t)) return; // a shared classifier is the embedding: one parameter
    if (t.dtype !== 'f32')
      throw new EngineError(
        'BAD_ARGUMENT',
        `${name} is ${t.dtype}: only an f32 model can be trained in full.`,
      );
    const p: Param<T> = { name, value: t, grad: be.zeros(t.shape, `d(${name})`) };
    map.set(t, p);
    params.push(p);
  };
  add(model.tokenEmbedding, 'tokenEmbedding');
  model.layers.forEach((layer, l) => {
    add(layer.rmsAtt, `layers.${l}.rmsAtt`);
    for (const s of LINEAR_SITES) add(layer[s], `layers.${l}.${s}`);
    add(layer.rmsFfn, `layers.${l}.rmsFfn`);
  });
  add(model.rmsFinal, 'rmsFinal');
  add(model.wcls, 'wcls');
  return {
    params,
    trainable: map,
    destroy: () => {
      for (const p of params) be.destroy(p.grad);
    },
  };
}
