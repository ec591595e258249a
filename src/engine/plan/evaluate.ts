// The planner's figures and limit checks for one request (no verdict): src/engine/plan.ts.
import { EngineError } from '../errors.ts';
import { BufferPool } from '../gpu/pool.ts';
import { kvDim, type LlamaConfig } from '../model/config.ts';
import { LINEAR_SITES, SITE_OF_TARGET, siteShape } from '../model/llama.ts';
import { natParamCount } from '../model/nat.ts';
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
  type TrainVariant,
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
  // The runner's per-row buffers (infer/runner.ts), bound whole by the kernels. With f16
  // activations the residual stream (x, sel) and the norms' rstd stay f32.
  const act: [string, number, number][] = [
    ['run.x', R * C, 4],
    ['run.h', R * C, a],
    ['run.q', R * C, a],
    ['run.k', R * KV, a],
    ['run.v', R * KV, a],
    ['run.att', R * C, a],
    ['run.o', R * C, a],
    ['run.g', R * H, a],
    ['run.u', R * H, a],
    ['run.s', R * H, a],
    ['run.sel', R * C, 4],
    ['run.rstd', R, 4],
  ];
  // f16 activations with adapters: the adapters' sites run in f32 through two staging buffers
  if (a === 2 && (r.adapters ?? []).length > 0)
    act.push(['run.adapterIn', R * Math.max(C, H), 4], ['run.adapterOut', R * Math.max(C, H), 4]);
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

/**
 * The step's parameters: trained (with AdamW state) and all held (frozen LoRAs and units too; every
 * loaded adapter tensor has a gradient buffer), and how many trained tensors there are.
 */
function variantParams(c: LlamaConfig, lora: LoraSpec, v: TrainVariant) {
  const P = adapterParams(c, lora);
  const tensors = (s: LoraSpec) => 2 * s.targets.length * c.nLayers;
  const loraTensors = tensors(lora);
  if (v.kind === 'lora') return { trained: P, held: P, tensors: loraTensors, frozenModels: 0 };
  const neg = v.frozen?.neg ?? lora;
  const N = adapterParams(c, neg);
  switch (v.kind) {
    case 'linmix':
      return { trained: P, held: P + N, tensors: loraTensors, frozenModels: 0 };
    case 'nat': {
      // the unit sits on the negative LoRA's targets: four tensors per site
      const U = natParamCount(c, { du: v.du, targets: [...neg.targets] });
      return { trained: P + U, held: P + N + U, tensors: loraTensors + 2 * tensors(neg), frozenModels: 0 };
    }
    case 'nce': {
      const U = natParamCount(c, { du: v.du, targets: [...neg.targets] });
      const pos = adapterParams(c, v.frozen?.pos ?? lora);
      return { trained: P, held: P + pos + N + U, tensors: loraTensors, frozenModels: 2 };
    }
  }
}

function evaluateTraining(r: TrainingRequest): Core {
  const c = r.config;
  const C = c.dim,
    V = c.vocabSize,
    L = c.nLayers;
  const N = r.batch * r.seq;
  const wts = weightTensors(c, r.weights);
  const variant = r.variant ?? { kind: 'lora' };
  const vp = variantParams(c, r.lora, variant);
  const P = vp.trained;
  const nParamTensors = vp.tensors;

  // The head alone (0 layers, its input needing a gradient as it does below any layer), one more
  // layer, and (without recompute) the whole model as the tape holds it.
  const head0 = traceStep(c, 0, r.batch, r.seq, r.lora, true, variant);
  const one = traceStep(c, 1, r.batch, r.seq, r.lora, true, variant);
  const layerAll = added(one, head0);
  const layerAllocs = layerAll.filter((x) => !x.frozen);
  const batchAllocs = head0.filter((x) => BATCH_LABELS.has(x.label));
  const batchInputs = sum(batchAllocs);
  const chunk = Math.min(r.logitsChunkRows ?? N, N);
  const isLogits = (x: Alloc) => x.label === 'classifier' || x.label === 'd(classifier)';
  // NCE's frozen models run on sub-tapes: only their logits (whole: every row is read) outlive them
  const kept = (x: Alloc) => !x.frozen || x.label === 'classifier';
  const chunked = (a: readonly Alloc[]) =>
    a.map((x) => (isLogits(x) && !x.frozen ? { ...x, bytes: chunk * V * 4 } : x));
  const headAll = chunked(head0.filter((x) => !BATCH_LABELS.has(x.label) && x.label !== 'emb'));
  const head = headAll.filter(kept);
  const logits = sum(head.filter(isLogits));
  const layerForward = sum(layerAllocs.filter((x) => x.phase === 'forward'));
  const layerBackward = sum(layerAllocs.filter((x) => x.phase === 'backward'));
  const residual = N * C * 4;
  // NAT's α (one per position, site and layer, read for the step's figures) outlives its layer's
  // sub-tape under recompute
  const layerAlphas = layerAllocs.filter((x) => x.label === 'nat.alpha');
  const alphas = r.recompute ? L * sum(layerAlphas) : 0;

  let activations: number, recompute: number, firstLayer: number, tapeAllocs: Alloc[], checkpoints: number;
  // NCE: the live bytes at the NAT teacher's peak (its forward runs first; the negative model's
  // peak cannot be the step's: what is live then is live at the student's, and its forward is smaller)
  let teacherPeak = 0;
  const counted: { bytes: number }[] = [...batchAllocs];
  if (r.recompute) {
    checkpoints = (L + 1) * residual;
    activations = checkpoints + alphas + sum(head) - logits;
    recompute = layerForward + layerBackward + residual;
    if (vp.frozenModels) {
      // at its last layer: its embedding, the earlier layers' outputs and that layer's forward;
      // at its end: the embedding, every layer's output, the final norm and the logits
      const lastLayer = L * residual + sum(layerAll.filter((x) => x.frozen === 1));
      const end = (L + 1) * residual + sum(headAll.filter((x) => x.frozen === 1));
      teacherPeak = batchInputs + Math.max(lastLayer, end);
    }
    firstLayer = layerForward + layerBackward;
    // (a frozen model's layer buffers are made too, one layer at a time)
    tapeAllocs = [...headAll, ...layerAll];
    for (let i = 0; i <= L; i++) counted.push({ bytes: residual });
    counted.push(...head, ...layerAllocs, { bytes: residual });
    for (let i = 0; i < L; i++) counted.push(...layerAlphas);
  } else {
    checkpoints = 0;
    const traced = chunked(traceStep(c, L, r.batch, r.seq, r.lora, false, variant)).filter(
      (x) => !BATCH_LABELS.has(x.label),
    );
    const full = traced.filter(kept);
    activations = sum(full) - logits;
    recompute = 0;
    // the teacher's whole forward is live until its sub-tape ends
    if (vp.frozenModels) teacherPeak = batchInputs + sum(traced.filter((x) => x.frozen === 1));
    // (the trained model's allocations: a frozen model's are neither the head's nor a layer's)
    const own = (a: readonly Alloc[]) => sum(a.filter((x) => !x.frozen));
    firstLayer = own(full) - residual - own(head) - (L - 1) * (layerForward + layerBackward);
    tapeAllocs = traced;
    counted.push(...full);
  }
  // the transient row holds the teacher's forward where it peaks above the student's step
  recompute = Math.max(recompute, teacherPeak - batchInputs - activations - logits);
  const poolSlack = slack(counted);
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
      adapters: 4 * vp.held,
      optimizer: 2 * 4 * P + 4 * Math.max(1, nParamTensors) + 4,
      gradients: 4 * vp.held,
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
      frozenPeak: teacherPeak,
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
