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
import { NAT_PARTS, natPartShape, type NatSite, type NatUnit } from '../model/nat.ts';
import { llamaForward, loraHook, type SiteHook } from '../train/forward.ts';
import { linearMixHook } from '../train/linmix.ts';
import { natHook } from '../train/nat.ts';
import { nceStep } from '../train/objectives.ts';
import { uploadBatch } from '../train/trainer.ts';
import type { LoraSpec, TensorLine, TrainVariant } from './types.ts';

// ---------------------------------------------------------------------------------------------
// The metering backend: the real tape and ops, no computation, every allocation recorded.

export interface MeterTensor extends BackendTensor {
  readonly bytes: number;
}

export interface Alloc {
  label: string;
  bytes: number;
  phase: 'forward' | 'backward';
  /** Made by a frozen model's forward: NCE's teacher (1) or negative model (2). */
  frozen?: 1 | 2;
}

export const noop = () => undefined;

export class Meter implements Backend<MeterTensor> {
  readonly kind = 'cpu';
  readonly f16 = false;
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
 * Allocations of one training micro-batch (forward, loss, backward) of an `nLayers`-layer model,
 * for the step `variant` trains (default: one LoRA by likelihood). `trainableEmbedding` makes the
 * embedding's output need a gradient, so the first layer behaves like any later one (how a
 * recomputed layer sees its checkpointed input). The frozen models' forwards (NCE's teacher and
 * negative model) are marked `frozen`.
 */
export function traceStep(
  c: LlamaConfig,
  nLayers: number,
  B: number,
  T: number,
  lora: LoraSpec,
  trainableEmbedding: boolean,
  variant: TrainVariant = { kind: 'lora' },
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
  const adapter = meterLora(be, nLayers, c, lora, 'lora');
  const n = B * T;
  const tape = new Tape(be);
  const packed = {
    B,
    T,
    tokens: new Uint32Array(n),
    targets: new Uint32Array(n),
    weights: new Float32Array(n),
    positions: new Uint32Array(n),
  };
  const trainable = trainableEmbedding
    ? new Map([
        [
          tokenEmbedding,
          { name: 'tok_embeddings', value: tokenEmbedding, grad: be.tensor(tokenEmbedding.shape, 'd(emb)') },
        ],
      ])
    : null;
  const loss = (hook: SiteHook<MeterTensor>) => {
    const batch = uploadBatch(tape, packed);
    const logits = llamaForward(tape, model, batch, hook, trainable);
    ad.crossentropy(tape, logits, batch.targets, batch.weights);
  };
  // the frozen negative LoRA (NAT, the linear mix, NCE): its own shape where the variant gives one
  const negSpec = (variant.kind !== 'lora' && variant.frozen?.neg) || lora;
  switch (variant.kind) {
    case 'lora':
      loss(loraHook(tape, adapter, 0, true));
      break;
    case 'linmix':
      loss(linearMixHook(tape, adapter, meterLora(be, nLayers, c, negSpec, 'neg'), 0, true));
      break;
    case 'nat': {
      const unit = meterNatUnit(be, nLayers, c, variant.du, negSpec.targets);
      const neg = meterLora(be, nLayers, c, negSpec, 'neg');
      // the NAT stage reads α back after the step, so the hook keeps it (as the stage's does)
      loss(natHook(tape, adapter, neg, unit, { trainable: true, training: true, seed: 0 }, []));
      break;
    }
    case 'nce': {
      const unit = meterNatUnit(be, nLayers, c, variant.du, negSpec.targets);
      const pos = meterLora(be, nLayers, c, variant.frozen?.pos ?? lora, 'pos');
      const neg = meterLora(be, nLayers, c, negSpec, 'neg');
      // nceStep's order: the batch (its BATCH_LABELS tensors), the teacher's forward, the negative model's, the
      // student's; a hook is made just before its forward starts
      let from = BATCH_LABELS.size;
      const mark = (model: 1 | 2) => {
        for (let i = from; i < be.allocs.length; i++) be.allocs[i]!.frozen = model;
        from = be.allocs.length;
      };
      nceStep(
        tape,
        model,
        packed,
        {
          teacher: (tp) => natHook(tp, pos, neg, unit, { trainable: false, training: false, seed: 0 }),
          negative: (tp) => {
            mark(1);
            return loraHook(tp, neg, 0, false, true);
          },
          student: (tp, s, tr) => {
            mark(2);
            return loraHook(tp, adapter, s, tr);
          },
        },
        { norm: { tokens: n }, seed: 0, training: true },
        trainable,
      );
      break;
    }
  }
  be.phase = 'backward';
  tape.backward();
  tape.release();
  return be.allocs;
}

/** A LoRA's parameters (uncounted tensors: the planner counts adapters apart). */
function meterLora(
  be: Meter,
  nLayers: number,
  c: LlamaConfig,
  lora: LoraSpec,
  name: string,
): LoraAdapter<MeterTensor> {
  const params: Param<MeterTensor>[] = [];
  const adapterLayers: Partial<Record<LoraTarget, LoraPair<MeterTensor>>>[] = [];
  for (let l = 0; l < nLayers; l++) {
    const layer: Partial<Record<LoraTarget, LoraPair<MeterTensor>>> = {};
    for (const target of lora.targets) {
      const [out, inp] = siteShape(c, SITE_OF_TARGET[target]);
      const p = (pname: string, shape: number[]) => ({
        name: pname,
        value: be.tensor(shape, pname),
        grad: be.tensor(shape, `d(${pname})`),
      });
      const pair = {
        A: p(`${name}.layers.${l}.${target}.A`, [lora.rank, inp]),
        B: p(`${name}.layers.${l}.${target}.B`, [out, lora.rank]),
      };
      params.push(pair.A, pair.B);
      layer[target] = pair;
    }
    adapterLayers.push(layer);
  }
  return {
    config: {
      rank: lora.rank,
      alpha: lora.rank,
      dropout: lora.dropout ?? DEFAULT_LORA.dropout,
      targets: [...lora.targets],
    },
    layers: adapterLayers,
    params,
  };
}

/** NAT's integration unit of width `du` on the LoRA's targets (uncounted tensors). */
function meterNatUnit(
  be: Meter,
  nLayers: number,
  c: LlamaConfig,
  du: number,
  targets: readonly LoraTarget[],
): NatUnit<MeterTensor> {
  const cfg = { ...c, nLayers };
  const params: Param<MeterTensor>[] = [];
  const layers = Array.from({ length: nLayers }, (_, l) => {
    const layer: Partial<Record<LoraTarget, NatSite<MeterTensor>>> = {};
    for (const t of targets) {
      const site = {} as NatSite<MeterTensor>;
      for (const part of NAT_PARTS) {
        const name = `nat.layers.${l}.${t}.${part}`;
        const shape = natPartShape(cfg, t, part, du);
        site[part] = { name, value: be.tensor(shape, name), grad: be.tensor(shape, `d(${name})`) };
        params.push(site[part]);
      }
      layer[t] = site;
    }
    return layer;
  });
  return { config: { du, targets: [...targets] }, layers, params };
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
  const key = (a: Alloc) => `${a.phase}|${a.frozen ?? 0}|${normLabel(a.label)}|${a.bytes}`;
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
