/**
 * The LLaMA forward on the tape, as llama2.c's model is written: a flat list of ops per layer.
 * Adapters plug in at the linear sites (LoRA now; the NAT integration unit uses the same hook).
 */
import type { BackendTensor } from '../backend/types.ts';
import * as ad from '../autograd/ops.ts';
import { Tape, type Var } from '../autograd/tape.ts';
import { headSize } from '../model/config.ts';
import { SITE_OF_TARGET, type LinearSite, type LlamaModel, type LoraTarget } from '../model/llama.ts';
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

/** A per-site adapter hook: given the site and input, returns the LoRA to apply (or null). */
export type SiteHook<T extends BackendTensor> = (
  layer: number,
  site: LinearSite,
  x: Var<T>,
) => ad.LoraSite<T> | null;

/** LoRA sites for a training step: one dropout seed per (step, layer, site). */
export function loraHook<T extends BackendTensor>(
  tape: Tape<T>,
  adapter: LoraAdapter<T>,
  stepSeed: number,
  training: boolean,
): SiteHook<T> {
  const siteTargets = new Map<LinearSite, LoraTarget>();
  for (const t of adapter.config.targets) siteTargets.set(SITE_OF_TARGET[t], t);
  const vars = adapter.layers.map((layer) => {
    const m = new Map<LoraTarget, { A: Var<T>; B: Var<T> }>();
    for (const [target, pair] of Object.entries(layer)) {
      if (pair) m.set(target as LoraTarget, { A: tape.param(pair.A), B: tape.param(pair.B) });
    }
    return m;
  });
  const scale = adapter.config.alpha / adapter.config.rank;
  return (l, site) => {
    const target = siteTargets.get(site);
    const ab = target ? vars[l]?.get(target) : undefined;
    if (!ab) return null;
    const siteIndex = ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3'].indexOf(site);
    return {
      A: ab.A,
      B: ab.B,
      scale,
      dropout: training ? adapter.config.dropout : 0,
      seed: (Math.imul(stepSeed + 1, 0x9e3779b1) ^ (l * 16 + siteIndex)) >>> 0,
    };
  };
}

/** Logits (B·T, V) of the model on the tape. */
export function llamaForward<T extends BackendTensor>(
  tape: Tape<T>,
  model: LlamaModel<T>,
  batch: BatchTensors<T>,
  hook: SiteHook<T> | null,
): Var<T> {
  const c = model.config;
  const N = batch.B * batch.T;
  const HS = headSize(c);
  const k = (t: T) => tape.constant(t);
  const lin = (l: number, site: LinearSite, x: Var<T>) =>
    ad.linear(tape, x, k(model.layers[l]![site]), hook ? hook(l, site, x) : null, `l${l}.${site}`);
  let x = ad.embedding(tape, batch.tokens, k(model.tokenEmbedding), N);
  for (let l = 0; l < c.nLayers; l++) {
    const layer = model.layers[l]!;
    const h = ad.rmsnorm(tape, x, k(layer.rmsAtt), c.normEps);
    const q = ad.rope(tape, lin(l, 'wq', h), batch.positions, c.nHeads, HS, c.ropeTheta);
    const kk = ad.rope(tape, lin(l, 'wk', h), batch.positions, c.nKvHeads, HS, c.ropeTheta);
    const v = lin(l, 'wv', h);
    const a = ad.attention(tape, q, kk, v, batch.B, batch.T, c.nHeads, c.nKvHeads, HS);
    x = ad.add(tape, x, lin(l, 'wo', a));
    const h2 = ad.rmsnorm(tape, x, k(layer.rmsFfn), c.normEps);
    const s = ad.swiglu(tape, lin(l, 'w1', h2), lin(l, 'w3', h2));
    x = ad.add(tape, x, lin(l, 'w2', s));
  }
  const hf = ad.rmsnorm(tape, x, k(model.rmsFinal), c.normEps);
  return ad.linear(tape, hf, k(model.wcls), null, 'classifier');
}
