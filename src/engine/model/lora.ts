/**
 * LoRA adapters: per layer and target, A (R, in) and B (out, R); output += (alpha/R) · B A drop(x).
 * A starts Kaiming-uniform (PyTorch nn.Linear's default, bound 1/√in), B at zero, so a fresh
 * adapter leaves the model unchanged. Save/restore is plain data, ready for IndexedDB or PEFT.
 */
import type { Backend, BackendTensor } from '../backend/types.ts';
import type { Param } from '../autograd/tape.ts';
import { EngineError } from '../errors.ts';
import type { LlamaConfig } from './config.ts';
import { SITE_OF_TARGET, siteShape, type LoraTarget } from './llama.ts';

export interface LoraConfig {
  rank: number;
  alpha: number;
  dropout: number;
  targets: LoraTarget[];
}

export const DEFAULT_LORA: LoraConfig = { rank: 8, alpha: 16, dropout: 0.05, targets: ['q', 'v'] };

export interface LoraPair<T> {
  A: Param<T>; // (R, in)
  B: Param<T>; // (out, R)
}

export interface LoraAdapter<T extends BackendTensor> {
  readonly config: LoraConfig;
  readonly layers: Partial<Record<LoraTarget, LoraPair<T>>>[];
  readonly params: Param<T>[];
}

/** Plain-data adapter: names like `layers.3.q.A` → values. */
export interface LoraState {
  config: LoraConfig;
  /** The model shape the adapter belongs to (checked on load). */
  model: { dim: number; hiddenDim: number; nLayers: number; kvDim: number };
  tensors: Record<string, { shape: number[]; data: Float32Array }>;
}

/** Deterministic uniform(-1, 1) stream (mulberry32), so adapters are reproducible by seed. */
export function uniformStream(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  };
}

function modelShape(c: LlamaConfig): LoraState['model'] {
  return { dim: c.dim, hiddenDim: c.hiddenDim, nLayers: c.nLayers, kvDim: (c.dim * c.nKvHeads) / c.nHeads };
}

function makeParam<T extends BackendTensor>(
  be: Backend<T>,
  name: string,
  shape: number[],
  data: Float32Array,
): Param<T> {
  return {
    name,
    value: be.fromData(shape, data, name),
    grad: be.fromData(shape, new Float32Array(data.length), `d(${name})`),
  };
}

export function createLora<T extends BackendTensor>(
  be: Backend<T>,
  model: LlamaConfig,
  config: LoraConfig,
  seed: number,
): LoraAdapter<T> {
  if (!(config.rank >= 1) || config.targets.length === 0) {
    throw new EngineError('BAD_ARGUMENT', 'a LoRA adapter needs rank ≥ 1 and at least one target');
  }
  const rnd = uniformStream(seed);
  const tensors: LoraState['tensors'] = {};
  for (let l = 0; l < model.nLayers; l++) {
    for (const target of config.targets) {
      const [out, inp] = siteShape(model, SITE_OF_TARGET[target]);
      const bound = 1 / Math.sqrt(inp);
      const A = new Float32Array(config.rank * inp).map(() => rnd() * bound);
      tensors[`layers.${l}.${target}.A`] = { shape: [config.rank, inp], data: A };
      tensors[`layers.${l}.${target}.B`] = {
        shape: [out, config.rank],
        data: new Float32Array(out * config.rank),
      };
    }
  }
  return loadLora(be, model, { config, model: modelShape(model), tensors });
}

/** Builds an adapter from plain data, after checking it fits this model. */
export function loadLora<T extends BackendTensor>(
  be: Backend<T>,
  model: LlamaConfig,
  state: LoraState,
): LoraAdapter<T> {
  const want = modelShape(model);
  for (const k of Object.keys(want) as (keyof typeof want)[]) {
    if (state.model[k] !== want[k]) {
      throw new EngineError(
        'SHAPE_MISMATCH',
        `This adapter was trained for another model (${k} ${state.model[k]}, this model has ${want[k]}). Load the model it was made for.`,
      );
    }
  }
  const { config } = state;
  const layers: LoraAdapter<T>['layers'] = [];
  const params: Param<T>[] = [];
  try {
    for (let l = 0; l < model.nLayers; l++) {
      const layer: Partial<Record<LoraTarget, LoraPair<T>>> = {};
      for (const target of config.targets) {
        const [out, inp] = siteShape(model, SITE_OF_TARGET[target]);
        const pair = {} as LoraPair<T>;
        for (const [m, shape] of [
          ['A', [config.rank, inp]],
          ['B', [out, config.rank]],
        ] as const) {
          const name = `layers.${l}.${target}.${m}`;
          const t = state.tensors[name];
          if (!t || t.data.length !== shape[0] * shape[1]) {
            throw new EngineError(
              'SHAPE_MISMATCH',
              `adapter tensor ${name} is missing or has the wrong size (want ${shape.join('×')}).`,
            );
          }
          const p = makeParam(be, name, [...shape], t.data);
          params.push(p);
          pair[m] = p;
        }
        layer[target] = pair;
      }
      layers.push(layer);
    }
  } catch (e) {
    for (const p of params) {
      be.destroy(p.value);
      be.destroy(p.grad);
    }
    throw e;
  }
  return { config: { ...config, targets: [...config.targets] }, layers, params };
}

export async function saveLora<T extends BackendTensor>(
  be: Backend<T>,
  model: LlamaConfig,
  a: LoraAdapter<T>,
): Promise<LoraState> {
  const tensors: LoraState['tensors'] = {};
  for (const p of a.params) tensors[p.name] = { shape: [...p.value.shape], data: await be.read(p.value) };
  return { config: { ...a.config, targets: [...a.config.targets] }, model: modelShape(model), tensors };
}

export function destroyLora<T extends BackendTensor>(be: Backend<T>, a: LoraAdapter<T>): void {
  for (const p of a.params) {
    be.destroy(p.value);
    be.destroy(p.grad);
  }
}
