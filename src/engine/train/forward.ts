/**
 * The LLaMA forward on the tape, as llama2.c's model is written: a flat list of ops per layer.
 * Adapters plug in at the linear sites (LoRA now; the NAT integration unit uses the same hook).
 */
import type { BackendTensor } from '../backend/types.ts';
import * as ad from '../autograd/ops.ts';
import { Tape, type Param, type Var } from '../autograd/tape.ts';
import { headSize } from '../model/config.ts';
import {
  LINEAR_SITES,
  SITE_OF_TARGET,
  type LinearSite,
  type LlamaModel,
  type LoraTarget,
} from '../model/llama.ts';
import type { LoraAdapter } from '../model/lora.ts';

/** One batch on the backend: B sequences of T tokens, row-major (B·T). */
export interface BatchTensors<T> {
  B: number;
  T: number;
  tokens: T; // u32 (B·T)
  targets: T; // u32 (B·T) next tokens
  weights: T; // f32 (B·T) loss weight per token (mask / number of loss tokens)
  positions: T; // u32 (B·T) position of each token in its sequence
}

/**
 * What an adapter does at one linear site: given the site input x and the frozen weight W, the
 * site's output, with every op recorded on `tape` — the tape the forward runs on at that moment,
 * which under recompute is a layer's sub-tape, not the step's. `null` from a hook leaves the site
 * plain (x · Wᵀ).
 */
export type SiteAdapter<T extends BackendTensor> = (
  tape: Tape<T>,
  x: Var<T>,
  W: Var<T>,
  label: string,
) => Var<T>;

/**
 * A per-site adapter hook (LoRA, NAT's integration unit, ...). Under recompute it is asked again
 * for each layer's re-run: it must give the same adapter (same parameters, same dropout seeds).
 */
export type SiteHook<T extends BackendTensor> = (layer: number, site: LinearSite) => SiteAdapter<T> | null;

/** How the forward runs. */
export interface ForwardOptions {
  /**
   * Activation recompute (gradient checkpointing): each layer is a checkpointed segment
   * (`ad.checkpoint`), so the tape keeps only the residual stream at the layer boundaries and the
   * backward re-runs one layer at a time. Same values and gradients, one more forward of every
   * layer. Default false.
   */
  recompute?: boolean;
}

/**
 * The LoRA of `adapter` at (layer, site), or null where it has none. `tape` only wraps the
 * adapter's tensors as Vars (trainable, or constants when `frozen`); ops record elsewhere.
 */
export function loraSites<T extends BackendTensor>(
  tape: Tape<T>,
  adapter: LoraAdapter<T>,
  stepSeed: number,
  training: boolean,
  frozen = false,
): (layer: number, site: LinearSite) => ad.LoraSite<T> | null {
  const siteTargets = new Map<LinearSite, LoraTarget>();
  for (const t of adapter.config.targets) siteTargets.set(SITE_OF_TARGET[t], t);
  const wrap = (p: Param<T>) => (frozen ? tape.constant(p.value) : tape.param(p));
  const vars = adapter.layers.map((layer) => {
    const m = new Map<LoraTarget, { A: Var<T>; B: Var<T> }>();
    for (const [target, pair] of Object.entries(layer)) {
      if (pair) m.set(target as LoraTarget, { A: wrap(pair.A), B: wrap(pair.B) });
    }
    return m;
  });
  const scale = adapter.config.alpha / adapter.config.rank;
  return (l, site) => {
    const target = siteTargets.get(site);
    const ab = target ? vars[l]?.get(target) : undefined;
    if (!ab) return null;
    return {
      A: ab.A,
      B: ab.B,
      scale,
      dropout: training ? adapter.config.dropout : 0,
      seed: siteSeed(stepSeed, l, site),
    };
  };
}

/** The dropout seed of one (step, layer, site): the backward regenerates the same mask from it. */
export function siteSeed(stepSeed: number, layer: number, site: LinearSite): number {
  return (Math.imul(stepSeed + 1, 0x9e3779b1) ^ (layer * 16 + LINEAR_SITES.indexOf(site))) >>> 0;
}

/** LoRA sites for a training step: one dropout seed per (step, layer, site). */
export function loraHook<T extends BackendTensor>(
  tape: Tape<T>,
  adapter: LoraAdapter<T>,
  stepSeed: number,
  training: boolean,
  frozen = false,
): SiteHook<T> {
  const sites = loraSites(tape, adapter, stepSeed, training, frozen);
  return (l, site) => {
    const lora = sites(l, site);
    return lora ? (tp, x, W, label) => ad.linear(tp, x, W, lora, label) : null;
  };
}

/**
 * Trainable base weights (full fine-tuning): model tensor → its parameter. Tensors not in the map
 * stay frozen. Built by `fullParams` in model/full.ts.
 */
export type TrainableWeights<T extends BackendTensor> = ReadonlyMap<T, Param<T>>;

/**
 * The final hidden states (B·T, C), after the last RMSNorm: what the classifier and the ranker
 * read. With `opts.recompute` each layer is a checkpoint (ad.checkpoint).
 */
export function llamaHidden<T extends BackendTensor>(
  tape: Tape<T>,
  model: LlamaModel<T>,
  batch: BatchTensors<T>,
  hook: SiteHook<T> | null,
  trainable: TrainableWeights<T> | null = null,
  opts: ForwardOptions = {},
): Var<T> {
  const c = model.config;
  const N = batch.B * batch.T;
  const HS = headSize(c);
  const k = (t: T) => {
    const p = trainable?.get(t);
    return p ? tape.param(p) : tape.constant(t);
  };
  // One layer on tape `tp` (the step's tape, or the layer's sub-tape under recompute).
  const block = (tp: Tape<T>, l: number, x: Var<T>): Var<T> => {
    const layer = model.layers[l]!;
    const lin = (site: LinearSite, xs: Var<T>) => {
      const W = k(layer[site]);
      const label = `l${l}.${site}`;
      const adapter = hook ? hook(l, site) : null;
      return adapter ? adapter(tp, xs, W, label) : ad.linear(tp, xs, W, null, label);
    };
    const h = ad.rmsnorm(tp, x, k(layer.rmsAtt), c.normEps);
    const q = ad.rope(tp, lin('wq', h), batch.positions, c.nHeads, HS, c.ropeTheta);
    const kk = ad.rope(tp, lin('wk', h), batch.positions, c.nKvHeads, HS, c.ropeTheta);
    const v = lin('wv', h);
    const a = ad.attention(tp, q, kk, v, batch.B, batch.T, c.nHeads, c.nKvHeads, HS);
    const x1 = ad.add(tp, x, lin('wo', a));
    const h2 = ad.rmsnorm(tp, x1, k(layer.rmsFfn), c.normEps);
    const s = ad.swiglu(tp, lin('w1', h2), lin('w3', h2));
    return ad.add(tp, x1, lin('w2', s));
  };
  let x = ad.embedding(tape, batch.tokens, k(model.tokenEmbedding), N);
  for (let l = 0; l < c.nLayers; l++) {
    x = opts.recompute
      ? ad.checkpoint(tape, x, (sub, xs) => block(sub, l, xs), `l${l}.out`)
      : block(tape, l, x);
  }
  return ad.rmsnorm(tape, x, k(model.rmsFinal), c.normEps);
}

/** Logits (B·T, V) of the model on the tape (the classifier is never recomputed). */
export function llamaForward<T extends BackendTensor>(
  tape: Tape<T>,
  model: LlamaModel<T>,
  batch: BatchTensors<T>,
  hook: SiteHook<T> | null,
  trainable: TrainableWeights<T> | null = null,
  opts: ForwardOptions = {},
): Var<T> {
  const hf = llamaHidden(tape, model, batch, hook, trainable, opts);
  const W = trainable?.get(model.wcls);
  return ad.linear(tape, hf, W ? tape.param(W) : tape.constant(model.wcls), null, 'classifier');
}
