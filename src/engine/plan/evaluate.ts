// The planner's figures and limit checks for one request (no verdict): src/engine/plan.ts.
import { EngineError } from '../errors.ts';
import { BufferPool } from '../gpu/pool.ts';
import { kvDim, type LlamaConfig } from '../model/config.ts';
import { LINEAR_SITES, SITE_OF_TARGET, siteShape } from '../model/llama.ts';
import {
  type WeightType,
  WEIGHT_LAYOUT,
  type WeightTypes,
  type DeviceLimits,
  type LoraSpec,
  type InferenceRequest,
  type TrainingRequest,
  type PlanRequest,
  type PlanItems,
  ITEM_NAMES,
  type SplitTensor,
  type OversizeTensor,
  type TrainingDetail,
  fmtInt,
} from './types.ts';
import { type Alloc, BATCH_LABELS, traceStep, sum, slack, normLabel, lines, added } from './meter.ts';

// ---------------------------------------------------------------------------------------------
// Weights

interface WeightTensor {
  name: string;
  type: WeightType;
  rows: number;
  rowBytes: number;
  bytes: number;
}

function rowBytes(name: string, type: WeightType, cols: number): number {
  const { values, bytes } = WEIGHT_LAYOUT[type];
  if (cols % values !== 0) {
    throw new EngineError(
      'BAD_ARGUMENT',
      `${name}: a row of ${fmtInt(cols)} values cannot be stored as ${type}, whose blocks hold ${values} values; use q4_0 or q8_0 (blocks of 32), f16 or f32.`,
    );
  }
  return (cols / values) * bytes;
}

/** Every weight tensor of the model with the storage type the request gives it. */
export function weightTensors(c: LlamaConfig, w: WeightTypes): WeightTensor[] {
  const out: WeightTensor[] = [];
  const add = (name: string, cls: WeightType, rows: number, cols: number) => {
    const type = w.tensors?.[name] ?? cls;
    const rb = rowBytes(name, type, cols);
    out.push({ name, type, rows, rowBytes: rb, bytes: rows * rb });
  };
  const norm = w.norm ?? 'f32';
  add('tok_embeddings', w.tokenEmbedding ?? w.matrices, c.vocabSize, c.dim);
  for (let l = 0; l < c.nLayers; l++) {
    add(`layers.${l}.attention_norm`, norm, 1, c.dim);
    for (const site of LINEAR_SITES) {
      const [rows, cols] = siteShape(c, site);
      add(`layers.${l}.${site}`, w.sites?.[site] ?? w.matrices, rows, cols);
    }
    add(`layers.${l}.ffn_norm`, norm, 1, c.dim);
  }
  add('norm', norm, 1, c.dim);
  if (!c.sharedClassifier) add('output', w.wcls ?? w.matrices, c.vocabSize, c.dim);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Evaluation (figures and limit checks, no verdict)

export interface Core {
  items: PlanItems;
  splits: SplitTensor[];
  oversize: OversizeTensor[];
  training: TrainingDetail | null;
}

interface Buffer {
  name: string;
  bytes: number;
  /** Split by rows when larger than a binding; 0 = must be bound whole. */
  rowBytes: number;
  rows: number;
  type: string;
}

function withTotal(i: Omit<PlanItems, 'total'>): PlanItems {
  let total = 0;
  for (const k of ITEM_NAMES) total += i[k];
  return { ...i, total };
}

function adapterParams(c: LlamaConfig, lora: LoraSpec): number {
  let perLayer = 0;
  for (const t of lora.targets) {
    const [out, inp] = siteShape(c, SITE_OF_TARGET[t]);
    perLayer += lora.rank * (inp + out);
  }
  return perLayer * c.nLayers;
}

/** Groups buffers named `...N...` by layer-free name, type and size; checks each against the limit. */
function checkBuffers(
  buffers: readonly Buffer[],
  limit: number,
): { splits: SplitTensor[]; oversize: OversizeTensor[] } {
  const groups = new Map<string, { b: Buffer; name: string; count: number }>();
  for (const b of buffers) {
    if (b.bytes <= limit) continue;
    const name = b.name.replace(/(^|\.)\d+(\.|$)/, '$1*$2');
    const key = `${name}|${b.type}|${b.bytes}|${b.rowBytes}`;
    const g = groups.get(key);
    if (g) g.count++;
    else groups.set(key, { b, name, count: 1 });
  }
  const splits: SplitTensor[] = [];
  const oversize: OversizeTensor[] = [];
  for (const { b, name, count } of groups.values()) {
    const shown = count > 1 ? name : b.name;
    const rowsPerPart = b.rowBytes > 0 ? Math.floor(limit / b.rowBytes) : 0;
    if (rowsPerPart === 0) {
      oversize.push({
        name: shown,
        bytes: b.rowBytes > 0 ? b.rowBytes : b.bytes,
        limit,
        row: b.rowBytes > 0,
      });
      continue;
    }
    splits.push({
      name: shown,
      count,
      type: b.type,
      rows: b.rows,
      rowBytes: b.rowBytes,
      bytes: b.bytes,
      parts: Math.ceil(b.rows / rowsPerPart),
      rowsPerPart,
    });
  }
  oversize.sort((a, b) => b.bytes - a.bytes);
  return { splits, oversize };
}

export function bindingLimit(limits: DeviceLimits): number {
  return Math.min(limits.maxBufferSize, limits.maxStorageBufferBindingSize);
}

function evaluateInference(r: InferenceRequest): Core {
  const c = r.config;
  const C = c.dim,
    H = c.hiddenDim,
    V = c.vocabSize,
    KV = kvDim(c),
    L = c.nLayers;
  const m = r.sequences,
    T = r.context;
  const R = Math.max(r.maxRows ?? 64, m);
  const a = r.act === 'f16' ? 2 : 4;
  const kvType = r.kv ?? r.act ?? 'f32';
  const kb = kvType === 'f16' ? 2 : 4;
  const wts = weightTensors(c, r.weights);
  const buffers: Buffer[] = wts.map((w) => ({ ...w }));
  // KV cache: per layer k and v, [slots, T, KV]; split by slots (one sequence's cache stays whole).
  for (let l = 0; l < L; l++) {
    for (const kv of ['kcache', 'vcache']) {
      buffers.push({
        name: `${kv}.${l}`,
        bytes: m * T * KV * kb,
        rowBytes: T * KV * kb,
        rows: m,
        type: kvType,
      });
    }
  }
  // The runner's per-row buffers (infer/runner.ts), bound whole by the kernels.
  const act: [string, number, number][] = [
    ['run.x', R * C, a],
    ['run.h', R * C, a],
    ['run.q', R * C, a],
    ['run.k', R * KV, a],
    ['run.v', R * KV, a],
    ['run.att', R * C, a],
    ['run.o', R * C, a],
    ['run.g', R * H, a],
    ['run.u', R * H, a],
    ['run.s', R * H, a],
    ['run.sel', R * C, a],
    ['run.rstd', R, 4],
  ];
  const logits = R * V * 4;
  const indices = 5 * R * 4; // tokens, positions, outIdx (R each), rowInfo (2R), u32
  for (const [name, n, bytes] of act)
    buffers.push({ name, bytes: n * bytes, rowBytes: 0, rows: 1, type: 'act' });
  buffers.push({ name: 'run.logits', bytes: logits, rowBytes: 0, rows: 1, type: 'f32' });
  let adapters = 0;
  let loraScratch = 0;
  for (const s of r.adapters ?? []) {
    adapters += 4 * adapterParams(c, s);
    loraScratch += R * s.rank * 4;
    for (const t of s.targets) {
      const [out, inp] = siteShape(c, SITE_OF_TARGET[t]);
      buffers.push({ name: `lora.*.${t}.A`, bytes: 4 * s.rank * inp, rowBytes: 0, rows: 1, type: 'f32' });
      buffers.push({ name: `lora.*.${t}.B`, bytes: 4 * out * s.rank, rowBytes: 0, rows: 1, type: 'f32' });
    }
  }
  // The logits are read back whole through one staging buffer (bucket-sized, gpu/gpu.ts).
  const staging = BufferPool.bucket(logits);
  const { splits, oversize } = checkBuffers(buffers, bindingLimit(r.limits));
  return {
    items: withTotal({
      weights: sum(wts),
      kv: 2 * L * m * T * KV * kb,
      activations: act.reduce((s, [, n, bytes]) => s + n * bytes, 0),
      logits,
      adapters,
      optimizer: 0,
      // loadLora gives every adapter tensor a gradient buffer, also at inference.
      gradients: adapters,
      recompute: 0,
      scratch: indices + staging + loraScratch,
    }),
    splits,
    oversize,
    training: null,
  };
}

function evaluateTraining(r: TrainingRequest): Core {
  const c = r.config;
  const C = c.dim,
    V = c.vocabSize,
    L = c.nLayers;
  const N = r.batch * r.seq;
  const wts = weightTensors(c, r.weights);
  const P = adapterParams(c, r.lora);
  const nParamTensors = 2 * r.lora.targets.length * L;

  // The head alone (0 layers, its input needing a gradient as it does below any layer), one more
  // layer, and (without recompute) the whole model as the tape holds it.
  const head0 = traceStep(c, 0, r.batch, r.seq, r.lora, true);
  const one = traceStep(c, 1, r.batch, r.seq, r.lora, true);
  const layerAllocs = added(one, head0);
  const batchAllocs = head0.filter((x) => BATCH_LABELS.has(x.label));
  const headAllocs = head0.filter((x) => !BATCH_LABELS.has(x.label) && x.label !== 'emb');
  const chunk = Math.min(r.logitsChunkRows ?? N, N);
  const isLogits = (x: Alloc) => x.label === 'classifier' || x.label === 'd(classifier)';
  const chunked = (a: readonly Alloc[]) => a.map((x) => (isLogits(x) ? { ...x, bytes: chunk * V * 4 } : x));
  const head = chunked(headAllocs);
  const logits = sum(head.filter(isLogits));
  const layerForward = sum(layerAllocs.filter((x) => x.phase === 'forward'));
  const layerBackward = sum(layerAllocs.filter((x) => x.phase === 'backward'));
  const residual = N * C * 4;

  let activations: number, recompute: number, firstLayer: number, tapeAllocs: Alloc[], checkpoints: number;
  const counted: { bytes: number }[] = [...batchAllocs];
  if (r.recompute) {
    checkpoints = (L + 1) * residual;
    activations = checkpoints + sum(head) - logits;
    recompute = layerForward + layerBackward + residual;
    firstLayer = layerForward + layerBackward;
    tapeAllocs = [...head, ...layerAllocs];
    for (let i = 0; i <= L; i++) counted.push({ bytes: residual });
    counted.push(...head, ...layerAllocs, { bytes: residual });
  } else {
    checkpoints = 0;
    const full = chunked(traceStep(c, L, r.batch, r.seq, r.lora, false)).filter(
      (x) => !BATCH_LABELS.has(x.label),
    );
    activations = sum(full) - logits;
    recompute = 0;
    firstLayer = sum(full) - residual - sum(head) - (L - 1) * (layerForward + layerBackward);
    tapeAllocs = full;
    counted.push(...full);
  }
  const poolSlack = slack(counted);
  const batchInputs = sum(batchAllocs);
  // Readback: the losses (N) and the per-tensor gradient norms share one staging buffer.
  const staging = BufferPool.bucket(Math.max(N, nParamTensors) * 4);

  const buffers: Buffer[] = wts.map((w) => ({ ...w }));
  for (const x of tapeAllocs)
    buffers.push({
      name: normLabel(x.label),
      bytes: BufferPool.bucket(x.bytes),
      rowBytes: 0,
      rows: 1,
      type: 'f32',
    });
  for (const t of r.lora.targets) {
    const [out, inp] = siteShape(c, SITE_OF_TARGET[t]);
    buffers.push({ name: `lora.*.${t}.A`, bytes: 4 * r.lora.rank * inp, rowBytes: 0, rows: 1, type: 'f32' });
    buffers.push({ name: `lora.*.${t}.B`, bytes: 4 * out * r.lora.rank, rowBytes: 0, rows: 1, type: 'f32' });
  }
  const { splits, oversize } = checkBuffers(buffers, bindingLimit(r.limits));
  return {
    items: withTotal({
      weights: sum(wts),
      kv: 0,
      activations,
      logits,
      adapters: 4 * P,
      optimizer: 2 * 4 * P + 4 * Math.max(1, nParamTensors) + 4,
      gradients: 4 * P,
      recompute,
      scratch: batchInputs + staging + poolSlack,
    }),
    splits,
    oversize,
    training: {
      tokens: N,
      adapterParams: P,
      layerForward,
      layerBackward,
      firstLayer,
      head: sum(head),
      checkpoints,
      carried: r.recompute ? residual : 0,
      batchInputs,
      poolSlack,
      layerTensors: lines(layerAllocs),
      headTensors: lines(head),
    },
  };
}

export function evaluate(r: PlanRequest): Core {
  return r.kind === 'inference' ? evaluateInference(r) : evaluateTraining(r);
}
