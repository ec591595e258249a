/**
 * Adapters at inference (the KV-cache runner): what a linear site computes besides W0 x. LoRA,
 * NAT (both LoRAs + the integration unit, METHOD.md §1) and the linear-mix ablation. Each owns its
 * scratch buffers, sized for `maxRows` rows.
 */
import type { Backend, BackendTensor } from '../backend/types.ts';
import {
  SITE_OF_TARGET,
  siteShape,
  type LinearSite,
  type LlamaModel,
  type LoraTarget,
} from '../model/llama.ts';
import type { LoraAdapter, LoraPair } from '../model/lora.ts';
import type { NatUnit } from '../model/nat.ts';

export interface InferenceAdapter<T extends BackendTensor> {
  /** out (rows, N) = W0·inp + the adapter's part at (layer, site). */
  apply(l: number, site: LinearSite, out: T, inp: T, W: T, rows: number, K: number, N: number): void;
  destroy(): void;
}

function targetsOf(targets: readonly LoraTarget[]): Map<LinearSite, LoraTarget> {
  return new Map(targets.map((t) => [SITE_OF_TARGET[t], t]));
}

class Scratch<T extends BackendTensor> {
  private readonly made: T[] = [];
  constructor(private readonly be: Backend<T>) {}
  get(shape: number[], label: string): T {
    const t = this.be.fromData(shape, new Float32Array(shape.reduce((a, b) => a * b, 1)), label);
    this.made.push(t);
    return t;
  }
  destroy(): void {
    for (const t of this.made) this.be.destroy(t);
    this.made.length = 0;
  }
}

/** out += scale·B(A·inp) with `u` (rows, R) as scratch. */
function addLora<T extends BackendTensor>(
  be: Backend<T>,
  out: T,
  inp: T,
  pair: LoraPair<T>,
  u: T,
  scale: number,
  rows: number,
  K: number,
  N: number,
  R: number,
): void {
  be.ops.matmulForward(u, inp, pair.A.value, rows, K, R, false);
  be.ops.scaleInplace(u, scale, rows * R);
  be.ops.matmulForward(out, u, pair.B.value, rows, R, N, true);
}

export function loraInference<T extends BackendTensor>(
  be: Backend<T>,
  adapter: LoraAdapter<T>,
  maxRows: number,
): InferenceAdapter<T> {
  const R = adapter.config.rank;
  const scale = adapter.config.alpha / R;
  const sites = targetsOf(adapter.config.targets);
  const s = new Scratch(be);
  const u = s.get([maxRows, R], 'lora.u');
  return {
    apply(l, site, out, inp, W, rows, K, N) {
      be.ops.matmulForward(out, inp, W, rows, K, N, false);
      const t = sites.get(site);
      const pair = t ? adapter.layers[l]?.[t] : undefined;
      if (pair) addLora(be, out, inp, pair, u, scale, rows, K, N, R);
    },
    destroy: () => s.destroy(),
  };
}

/**
 * NAT at inference: both LoRAs and the unit. `alphas` (optional) receives α (rows) per (layer,
 * site) of the last call when `keepAlpha` is set: for the UI.
 */
export function natInference<T extends BackendTensor>(
  model: LlamaModel<T>,
  pos: LoraAdapter<T>,
  neg: LoraAdapter<T>,
  unit: NatUnit<T>,
  maxRows: number,
): InferenceAdapter<T> {
  const be = model.be;
  const sites = targetsOf(unit.config.targets);
  const du = unit.config.du;
  const s = new Scratch(be);
  const widest = Math.max(...unit.config.targets.map((t) => siteShape(model.config, SITE_OF_TARGET[t])[0]));
  const rmax = Math.max(pos.config.rank, neg.config.rank);
  const buf = (n: number, label: string) => s.get([maxRows, n], `nat.${label}`);
  const [hpos, hneg, vpos, vneg, mix] = ['hpos', 'hneg', 'vpos', 'vneg', 'mix'].map((n) =>
    buf(widest, n),
  ) as [T, T, T, T, T];
  const [q, kpos, kneg, t1, t2] = ['q', 'kpos', 'kneg', 't1', 't2'].map((n) => buf(du, n)) as [T, T, T, T, T];
  const u = buf(rmax, 'u');
  const alpha = s.get([maxRows], 'nat.alpha');
  return {
    apply(l, site, out, inp, W, rows, K, N) {
      const { ops } = be;
      ops.matmulForward(out, inp, W, rows, K, N, false);
      const t = sites.get(site);
      const ws = t ? unit.layers[l]?.[t] : undefined;
      const pp = t ? pos.layers[l]?.[t] : undefined;
      const pn = t ? neg.layers[l]?.[t] : undefined;
      if (!ws || !pp || !pn) return;
      for (const [h, pair, a] of [
        [hpos, pp, pos],
        [hneg, pn, neg],
      ] as const) {
        be.copy(out, h, rows * N);
        addLora(be, h, inp, pair, u, a.config.alpha / a.config.rank, rows, K, N, a.config.rank);
      }
      ops.matmulForward(q, inp, ws.wq.value, rows, K, du, false);
      ops.matmulForward(kpos, hpos, ws.wk.value, rows, N, du, false);
      ops.matmulForward(kneg, hneg, ws.wk.value, rows, N, du, false);
      for (const [h, v] of [
        [hpos, vpos],
        [hneg, vneg],
      ] as const) {
        ops.matmulForward(t1, h, ws.wv1.value, rows, N, du, false);
        ops.geluForward(t2, t1, rows * du);
        ops.matmulForward(v, t2, ws.wv2.value, rows, du, N, false);
      }
      ops.natmixForward(mix, alpha, q, kpos, kneg, vpos, vneg, out, rows, du, N);
      be.copy(mix, out, rows * N);
    },
    destroy: () => s.destroy(),
  };
}

/** The linear-mix ablation: out = W0 x + 2·Δ_pos(x) − Δ_neg(x). */
export function linearMixInference<T extends BackendTensor>(
  be: Backend<T>,
  pos: LoraAdapter<T>,
  neg: LoraAdapter<T>,
  maxRows: number,
): InferenceAdapter<T> {
  const sites = targetsOf(pos.config.targets);
  const s = new Scratch(be);
  const u = s.get([maxRows, Math.max(pos.config.rank, neg.config.rank)], 'linmix.u');
  return {
    apply(l, site, out, inp, W, rows, K, N) {
      be.ops.matmulForward(out, inp, W, rows, K, N, false);
      const t = sites.get(site);
      const a = t ? pos.layers[l]?.[t] : undefined;
      const b = t ? neg.layers[l]?.[t] : undefined;
      if (!a || !b) return;
      addLora(be, out, inp, a, u, (2 * pos.config.alpha) / pos.config.rank, rows, K, N, pos.config.rank);
      addLora(be, out, inp, b, u, -neg.config.alpha / neg.config.rank, rows, K, N, neg.config.rank);
    },
    destroy: () => s.destroy(),
  };
}
