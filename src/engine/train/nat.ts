/**
 * The NAT site adapter (METHOD.md §1) on the tape: frozen W0 and LoRA_neg, trainable LoRA_pos and
 * integration unit. Inference uses the same adapter without the tape's backward.
 *
 *   base = W0 x,  h_pos = base + Δ_pos(x),  h_neg = base + Δ_neg(x)
 *   q = W_Q x,  k_j = W_K h_j,  v_j = W_V2 GELU(W_V1 h_j),  out = natmix(q, k, v, base)
 */
import type { BackendTensor } from '../backend/types.ts';
import * as ad from '../autograd/ops.ts';
import type { Param, Tape, Var } from '../autograd/tape.ts';
import { EngineError } from '../errors.ts';
import type { LinearSite, LoraTarget } from '../model/llama.ts';
import { SITE_OF_TARGET } from '../model/llama.ts';
import type { LoraAdapter } from '../model/lora.ts';
import type { NatUnit } from '../model/nat.ts';
import { loraSites, type SiteHook } from './forward.ts';

export interface NatHookOptions {
  /** Train LoRA_pos and the unit (false: both frozen, e.g. the NAT model as NCE's teacher). */
  trainable: boolean;
  /** Dropout on (training) or off. */
  training: boolean;
  seed: number;
}

/** α (N) per (layer, site) of the last forward, for the UI's mean α per layer. */
export interface NatAlphas<T> {
  layer: number;
  site: LinearSite;
  alpha: T;
}

/** Checks that the three parts belong together (same targets). */
export function checkNatParts<T extends BackendTensor>(
  pos: LoraAdapter<T>,
  neg: LoraAdapter<T>,
  unit: NatUnit<T>,
): void {
  const key = (t: readonly LoraTarget[]) => [...t].sort().join(',');
  if (
    key(pos.config.targets) !== key(neg.config.targets) ||
    key(pos.config.targets) !== key(unit.config.targets)
  ) {
    throw new EngineError(
      'BAD_ARGUMENT',
      `NAT needs the positive LoRA, the negative LoRA and the integration unit on the same layers (positive: ${key(pos.config.targets)}, negative: ${key(neg.config.targets)}, unit: ${key(unit.config.targets)}).`,
    );
  }
}

export function natHook<T extends BackendTensor>(
  tape: Tape<T>,
  pos: LoraAdapter<T>,
  neg: LoraAdapter<T>,
  unit: NatUnit<T>,
  opts: NatHookOptions,
  alphas: NatAlphas<T>[] | null = null,
): SiteHook<T> {
  checkNatParts(pos, neg, unit);
  const posSites = loraSites(tape, pos, opts.seed, opts.training, !opts.trainable);
  // A different seed stream for the negative adapter's dropout (its own dropout layer in PEFT).
  const negSites = loraSites(tape, neg, opts.seed ^ 0x5bd1e995, opts.training, true);
  const wrap = (p: Param<T>) => (opts.trainable ? tape.param(p) : tape.constant(p.value));
  const targetOf = new Map<LinearSite, LoraTarget>();
  for (const t of unit.config.targets) targetOf.set(SITE_OF_TARGET[t], t);
  const unitVars = unit.layers.map((layer) => {
    const m = new Map<LoraTarget, { wq: Var<T>; wk: Var<T>; wv1: Var<T>; wv2: Var<T> }>();
    for (const [t, s] of Object.entries(layer)) {
      if (s) m.set(t as LoraTarget, { wq: wrap(s.wq), wk: wrap(s.wk), wv1: wrap(s.wv1), wv2: wrap(s.wv2) });
    }
    return m;
  });
  return (l, site) => {
    const target = targetOf.get(site);
    const u = target ? unitVars[l]?.get(target) : undefined;
    const lp = posSites(l, site);
    const ln = negSites(l, site);
    if (!u || !lp || !ln) return null;
    return (tp: Tape<T>, x: Var<T>, W: Var<T>, label: string) => {
      const base = ad.linear(tp, x, W, null, label);
      const hpos = ad.add(tp, base, ad.loraDelta(tp, x, lp, `${label}.lora_pos`));
      const hneg = ad.add(tp, base, ad.loraDelta(tp, x, ln, `${label}.lora_neg`));
      const q = ad.linear(tp, x, u.wq, null, `${label}.nat.q`);
      const kpos = ad.linear(tp, hpos, u.wk, null, `${label}.nat.kpos`);
      const kneg = ad.linear(tp, hneg, u.wk, null, `${label}.nat.kneg`);
      const v = (h: Var<T>, j: string) =>
        ad.linear(
          tp,
          ad.gelu(tp, ad.linear(tp, h, u.wv1, null, `${label}.nat.v1${j}`)),
          u.wv2,
          null,
          `${label}.nat.v2${j}`,
        );
      const { out, alpha } = ad.natmix(tp, q, kpos, kneg, v(hpos, 'pos'), v(hneg, 'neg'), base);
      // under recompute: α of the layer's first run, kept past its sub-tape; never from a re-run
      if (alphas && !tp.replaying) alphas.push({ layer: l, site, alpha: tp.keep(alpha) });
      return out;
    };
  };
}
