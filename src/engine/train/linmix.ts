/** The linear-mix ablation's site adapter on the tape. */
import type { BackendTensor } from '../backend/types.ts';
import * as ad from '../autograd/ops.ts';
import type { Tape } from '../autograd/tape.ts';
import type { LoraAdapter } from '../model/lora.ts';
import { loraSites, type SiteHook } from './forward.ts';

/** The linear-mix ablation's site: base + 2·Δ_pos(x) − Δ_neg(x) (METHOD.md §1, last note). */
export function linearMixHook<T extends BackendTensor>(
  tape: Tape<T>,
  pos: LoraAdapter<T>,
  neg: LoraAdapter<T>,
  seed: number,
  training: boolean,
  frozen = false,
): SiteHook<T> {
  const ps = loraSites(tape, pos, seed, training, frozen);
  const ns = loraSites(tape, neg, seed ^ 0x5bd1e995, training, true);
  return (l, site) => {
    const a = ps(l, site),
      b = ns(l, site);
    if (!a || !b) return null;
    return (tp, x, W, label) => {
      const base = ad.linear(tp, x, W, null, label);
      const dp = ad.loraDelta(tp, x, { ...a, scale: 2 * a.scale }, `${label}.lora_pos`);
      const dn = ad.loraDelta(tp, x, { ...b, scale: -b.scale }, `${label}.lora_neg`);
      return ad.add(tp, ad.add(tp, base, dp), dn);
    };
  };
}
