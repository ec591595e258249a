/**
 * The planner's metering backend: the real tape, autograd ops, forward and cross-entropy, no
 * computation, every allocation recorded (so "what our forward saves" is read off the code).
 */
import * as ad from '../autograd/ops.ts';
import { Tape, type Param } from '../autograd/tape.ts';
import type { Backend, BackendTensor, Ops } from '../backend/types.ts';
import { BufferPool } from '../gpu/pool.ts';
import { byteSize, type DType } from '../gpu/tensor.ts';
import { type LlamaConfig } from '../model/config.ts';
import {
  LINEAR_SITES,
  SITE_OF_TARGET,
  siteShape,
  type LlamaLayer,
  type LlamaModel,
  type LoraTarget,
} from '../model/llama.ts';
import { DEFAULT_LORA, type LoraAdapter, type LoraPair } from '../model/lora.ts';
import { llamaForward, loraHook } from '../train/forward.ts';
import { uploadBatch } from '../train/trainer.ts';
import type { LoraSpec, TensorLine } from './types.ts';

// ---------------------------------------------------------------------------------------------
// The metering backend: the real tape and ops, no computation, every allocation recorded.

export interface MeterTensor extends BackendTensor {
  readonly bytes: number;
}

export interface Alloc {
  label: string;
  bytes: number;
  phase: 'forward' | 'backward';
}

export const noop = () => undefined;

export class Meter implements Backend<MeterTensor> {
  readonly kind = 'cpu';
  readonly maxTensorBytes = Infinity;
  readonly ops = new Proxy({}, { get: () => noop }) as Ops<MeterTensor>;
  readonly allocs: Alloc[] = [];
  phase: 'forward' | 'backward' = 'forward';

  /** An uncounted tensor (weights, parameters: accounted for elsewhere). */
  tensor(shape: readonly number[], label: string, dtype: DType = 'f32'): MeterTensor {
    return { shape: [...shape], dtype, label, bytes: byteSize(shape, dtype) };
  }
  scratch(shape: readonly number[], label: string, dtype: DType = 'f32'): MeterTensor {
    const t = this.tensor(shape, label, dtype);
    this.allocs.push({ label, bytes: t.bytes, phase: this.phase });
    return t;
  }
  zeros(shape: readonly number[], label: string, dtype: DType = 'f32'): MeterTensor {
    return this.scratch(shape, label, dtype);
  }
  release(): void {}
  empty(shape: readonly number[], label: string, dtype: DType = 'f32'): MeterTensor {
    return this.tensor(shape, label, dtype);
  }
  fromData(shape: readonly number[], _data: unknown, label: string): MeterTensor {
    return this.tensor(shape, label);
  }
  weight(dtype: DType, shape: readonly [number, number], _data: unknown, label: string): MeterTensor {
    return this.tensor(shape, label, dtype);
  }
  write(): void {}
  zero(): void {}
  copy(): void {}
  read(): Promise<Float32Array> {
    return Promise.resolve(new Float32Array(0));
  }
  readMany(ts: readonly MeterTensor[]): Promise<Float32Array[]> {
    return Promise.resolve(ts.map(() => new Float32Array(0)));
  }
  readU32(): Promise<Uint32Array> {
    return Promise.resolve(new Uint32Array(0));
  }
  flush(): void {}
  sync(): Promise<void> {
    return Promise.resolve();
  }
  destroy(): void {}
}

export const BATCH_LABELS = new Set(['tokens', 'targets', 'weights', 'positions']);

/**
 * Allocations of one LoRA training micro-batch (forward, cross-entropy, backward) of an
 * `nLayers`-layer model. `trainableEmbedding` makes the embedding's output need a gradient, so the
 * first layer behaves like any later one (how a recomputed layer sees its checkpointed input).
 */
export function traceStep(
  c: LlamaConfig,
  nLayers: number,
  B: number,
  T: number,
  lora: LoraSpec,
  trainableEmbedding: boolean,
): Alloc[] {
  const be = new Meter();
  const cfg = { ...c, nLayers };
  const C = c.dim;
  const layers: LlamaLayer<MeterTensor>[] = [];
  for (let l = 0; l < nLayers; l++) {
    const layer = {
      rmsAtt: be.tensor([C], 'rmsAtt'),
      rmsFfn: be.tensor([C], 'rmsFfn'),
    } as LlamaLayer<MeterTensor>;
    for (const site of LINEAR_SITES) layer[site] = be.tensor(siteShape(c, site), site);
    layers.push(layer);
  }
  const tokenEmbedding = be.tensor([c.vocabSize, C], 'tok_embeddings');
  const model: LlamaModel<MeterTensor> = {
    be,
    config: cfg,
    tokenEmbedding,
    layers,
    rmsFinal: be.tensor([C], 'norm'),
    wcls: c.sharedClassifier ? tokenEmbedding : be.tensor([c.vocabSize, C], 'output'),
    tensors: [],
  };
  const params: Param<MeterTensor>[] = [];
  const adapterLayers: Partial<Record<LoraTarget, LoraPair<MeterTensor>>>[] = [];
  for (let l = 0; l < nLayers; l++) {
    const layer: Partial<Record<LoraTarget, LoraPair<MeterTensor>>> = {};
    for (const target of lora.targets) {
      const [out, inp] = siteShape(c, SITE_OF_TARGET[target]);
      const p = (name: string, shape: number[]) => ({
        name,
        value: be.tensor(shape, name),
        grad: be.tensor(shape, `d(${name})`),
      });
      const pair = {
        A: p(`layers.${l}.${target}.A`, [lora.rank, inp]),
        B: p(`layers.${l}.${target}.B`, [out, lora.rank]),
      };
      params.push(pair.A, pair.B);
      layer[target] = pair;
    }
    adapterLayers.push(layer);
  }
  const adapter: LoraAdapter<MeterTensor> = {
    config: {
      rank: lora.rank,
      alpha: lora.rank,
      dropout: lora.dropout ?? DEFAULT_LORA.dropout,
      targets: [...lora.targets],
    },
    layers: adapterLayers,
    params,
  };
  const n = B * T;
  const tape = new Tape(be);
  const batch = uploadBatch(tape, {
    B,
    T,
    tokens: new Uint32Array(n),
    targets: new Uint32Array(n),
    weights: new Float32Array(n),
    positions: new Uint32Array(n),
  });
  const trainable = trainableEmbedding
    ? new Map([
        [
          tokenEmbedding,
          { name: 'tok_embeddings', value: tokenEmbedding, grad: be.tensor(tokenEmbedding.shape, 'd(emb)') },
        ],
      ])
    : null;
  const logits = llamaForward(tape, model, batch, loraHook(tape, adapter, 0, true), trainable);
  ad.crossentropy(tape, logits, batch.targets, batch.weights);
  be.phase = 'backward';
  tape.backward();
  tape.release();
  return be.allocs;
}

export const sum = (a: readonly { bytes: number }[]) => a.reduce((s, x) => s + x.bytes, 0);
export const slack = (a: readonly { bytes: number }[]) =>
  a.reduce((s, x) => s + BufferPool.bucket(x.bytes) - x.bytes, 0);
export const normLabel = (label: string) => label.replace(/\bl\d+\./g, 'l.');

export function lines(allocs: readonly Alloc[]): TensorLine[] {
  const m = new Map<string, TensorLine>();
  for (const a of allocs) {
    const label = normLabel(a.label);
    const key = `${a.phase}|${label}|${a.bytes}`;
    const e = m.get(key);
    if (e) e.count++;
    else m.set(key, { label, bytes: a.bytes, count: 1, phase: a.phase });
  }
  return [...m.values()];
}

/** Multiset difference of allocations (by normalized label, size and phase): what `more` adds. */
export function added(more: readonly Alloc[], less: readonly Alloc[]): Alloc[] {
  const left = new Map<string, number>();
  const key = (a: Alloc) => `${a.phase}|${normLabel(a.label)}|${a.bytes}`;
  for (const a of less) left.set(key(a), (left.get(key(a)) ?? 0) + 1);
  const out: Alloc[] = [];
  for (const a of more) {
    const k = key(a);
    const n = left.get(k) ?? 0;
    if (n > 0) left.set(k, n - 1);
    else out.push(a);
  }
  return out;
}
