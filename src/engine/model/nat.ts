/**
 * NAT's dynamic integration unit (METHOD.md §1): at every adapted linear site with frozen W0
 * (d_out × d_in), a trainable W_Q (d_u × d_in), W_K (d_u × d_out), W_V1 (d_u × d_out) and
 * W_V2 (d_out × d_u) mix the positive and the negative LoRA's outputs:
 *
 *   base = W0 x,  h_pos = base + Δ_pos(x),  h_neg = base + Δ_neg(x)      (LoRA_neg frozen)
 *   q = W_Q x,  k_j = W_K h_j,  v_j = W_V2 GELU(W_V1 h_j),  e_j = q · k_j
 *   α = softmax([e_pos, e_neg])_neg − 0.5,  out = base + (1 − α) v_pos + α v_neg
 *
 * W_Q, W_K, W_V1 start Kaiming-uniform and W_V2 at zero, so a fresh unit is the identity
 * (out = base). Names: `layers.<l>.<target>.{wq,wk,wv1,wv2}`.
 */
import type { Backend, BackendTensor } from '../backend/types.ts';
import type { Param } from '../autograd/tape.ts';
import { EngineError } from '../errors.ts';
import type { LlamaConfig } from './config.ts';
import { SITE_OF_TARGET, siteShape, type LoraTarget } from './llama.ts';
import { uniformStream } from './lora.ts';
import { destroyParams, kaimingUniform, loadParams, saveParams, type TensorState } from './params.ts';

export interface NatConfig {
  /** Width of the unit's query/key/value space (128 for LLaMA-7b; min(128, dim) by default). */
  du: number;
  targets: LoraTarget[];
}

export interface NatSite<T> {
  wq: Param<T>; // (du, in)
  wk: Param<T>; // (du, out)
  wv1: Param<T>; // (du, out)
  wv2: Param<T>; // (out, du)
}

export interface NatUnit<T extends BackendTensor> {
  readonly config: NatConfig;
  readonly layers: Partial<Record<LoraTarget, NatSite<T>>>[];
  readonly params: Param<T>[];
}

export interface NatState {
  config: NatConfig;
  model: { dim: number; hiddenDim: number; nLayers: number };
  tensors: TensorState;
}

export function defaultNatWidth(c: LlamaConfig): number {
  return Math.min(128, c.dim);
}

export const NAT_PARTS = ['wq', 'wk', 'wv1', 'wv2'] as const;

/** The shape of one part of a site's unit. */
export function natPartShape(
  c: LlamaConfig,
  target: LoraTarget,
  part: (typeof NAT_PARTS)[number],
  du: number,
): [number, number] {
  const [out, inp] = siteShape(c, SITE_OF_TARGET[target]);
  switch (part) {
    case 'wq':
      return [du, inp];
    case 'wk':
    case 'wv1':
      return [du, out];
    case 'wv2':
      return [out, du];
  }
}

function spec(c: LlamaConfig, cfg: NatConfig): [string, [number, number]][] {
  const s: [string, [number, number]][] = [];
  for (let l = 0; l < c.nLayers; l++)
    for (const t of cfg.targets)
      for (const part of NAT_PARTS) s.push([`layers.${l}.${t}.${part}`, natPartShape(c, t, part, cfg.du)]);
  return s;
}

export function createNatUnit<T extends BackendTensor>(
  be: Backend<T>,
  model: LlamaConfig,
  config: NatConfig,
  seed: number,
): NatUnit<T> {
  if (!(config.du >= 1) || config.targets.length === 0) {
    throw new EngineError('BAD_ARGUMENT', 'a NAT unit needs a width d_u ≥ 1 and at least one target');
  }
  const rnd = uniformStream(seed);
  const tensors: TensorState = {};
  for (const [name, [rows, cols]] of spec(model, config)) {
    const data = name.endsWith('.wv2') ? new Float32Array(rows * cols) : kaimingUniform(rnd, rows, cols);
    tensors[name] = { shape: [rows, cols], data };
  }
  return loadNatUnit(be, model, { config, model: shapeOf(model), tensors });
}

function shapeOf(c: LlamaConfig): NatState['model'] {
  return { dim: c.dim, hiddenDim: c.hiddenDim, nLayers: c.nLayers };
}

export function loadNatUnit<T extends BackendTensor>(
  be: Backend<T>,
  model: LlamaConfig,
  state: NatState,
): NatUnit<T> {
  const want = shapeOf(model);
  for (const k of Object.keys(want) as (keyof typeof want)[]) {
    if (state.model[k] !== want[k]) {
      throw new EngineError(
        'SHAPE_MISMATCH',
        `This NAT unit was trained for another model (${k} ${state.model[k]}, this model has ${want[k]}). Load the model it was made for.`,
      );
    }
  }
  const byName = loadParams<T>(be, state.tensors, spec(model, state.config), 'NAT unit');
  const layers: NatUnit<T>['layers'] = [];
  for (let l = 0; l < model.nLayers; l++) {
    const layer: Partial<Record<LoraTarget, NatSite<T>>> = {};
    for (const t of state.config.targets) {
      const p = (part: string) => byName.get(`layers.${l}.${t}.${part}`)!;
      layer[t] = { wq: p('wq'), wk: p('wk'), wv1: p('wv1'), wv2: p('wv2') };
    }
    layers.push(layer);
  }
  return {
    config: { du: state.config.du, targets: [...state.config.targets] },
    layers,
    params: [...byName.values()],
  };
}

export async function saveNatUnit<T extends BackendTensor>(
  be: Backend<T>,
  model: LlamaConfig,
  u: NatUnit<T>,
): Promise<NatState> {
  return {
    config: { du: u.config.du, targets: [...u.config.targets] },
    model: shapeOf(model),
    tensors: await saveParams(be, u.params),
  };
}

export function destroyNatUnit<T extends BackendTensor>(be: Backend<T>, u: NatUnit<T>): void {
  destroyParams(be, u.params);
}

/** Number of trainable values (shown in the UI beside the LoRA's). */
export function natParamCount(model: LlamaConfig, config: NatConfig): number {
  return spec(model, config).reduce((n, [, [r, c]]) => n + r * c, 0);
}
