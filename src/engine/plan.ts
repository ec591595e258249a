/**
 * The memory planner: before anything is loaded, the bytes a LLaMA needs on the GPU — weights, KV
 * cache, activations, adapters, optimizer state, recompute buffers — against the device's limits,
 * with a refusal that says what does not fit, by how much, and what would (docs/planner.md).
 *
 * Pure: no GPU. Inference figures follow the buffers `LlamaRunner` (infer/runner.ts) allocates.
 * Training figures come from running the real forward (train/forward.ts), the real autograd ops
 * and tape (autograd/) and the real cross-entropy on a metering backend that records every
 * allocation and computes nothing — so "what our forward saves" is read off the code, not guessed.
 *
 * Weight bytes follow the GGUF block layouts (ggml's ggml-common.h: block_q4_0 = f16 d + 16 B of
 * nibbles per 32 values; block_q8_0 = f16 d + 32 int8; block_q4_K = f16 d, f16 dmin, 12 B scales,
 * 128 B quants per 256 values; block_q6_K = 128 B ql, 64 B qh, 16 int8 scales, f16 d per 256).
 *
 * @example
 *   const plan = planMemory({ kind: 'inference', config, weights: { matrices: 'q4_0' }, act: 'f16',
 *     sequences: 16, context: 1024, limits: { ...gpu.limits, memoryBudget: 8 * 2 ** 30 } });
 *   console.log(formatPlan(plan));
 *   if (plan.error) throw plan.error; // OUT_OF_MEMORY: "... at most 8 sequences at 1,024 positions ..."
 */
import { EngineError, formatBytes } from './errors.ts';
import { kvDim, validateConfig } from './model/config.ts';
import {
  type WeightType,
  type WeightTypes,
  DEFAULT_MEMORY_BUDGET,
  type InferenceRequest,
  type TrainingRequest,
  type TrainVariant,
  type PlanRequest,
  type PlanItems,
  ITEM_NAMES,
  type Suggestion,
  type Plan,
  fmtInt,
} from './plan/types.ts';
import { sum } from './plan/meter.ts';
export * from './plan/types.ts';
import { bindingLimit, evaluate, weightTensors, type Core } from './plan/evaluate.ts';

export { weightTensors };

// ---------------------------------------------------------------------------------------------
// Verdict and suggestions

function budgetOf(r: PlanRequest): number {
  return r.limits.memoryBudget ?? DEFAULT_MEMORY_BUDGET;
}

function fits(r: PlanRequest): { ok: boolean; total: number } {
  const core = evaluate(r);
  return { ok: core.oversize.length === 0 && core.items.total <= budgetOf(r), total: core.items.total };
}

/** The largest x in [lo, hi] for which make(x) fits (fitting is monotone: smaller fits if larger does). */
function largest(
  lo: number,
  hi: number,
  make: (x: number) => PlanRequest,
): { x: number; total: number } | null {
  if (hi < lo) return null;
  let best: { x: number; total: number } | null = null;
  while (lo <= hi) {
    const mid = Math.floor((lo + hi) / 2);
    const f = fits(make(mid));
    if (f.ok) {
      best = { x: mid, total: f.total };
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return best;
}

/** Storage types, largest first (q4_k is as large as q4_0 and is left out). */
const COMPACTING: readonly WeightType[] = ['f32', 'f16', 'q8_0', 'q6_k', 'q4_0'];

function quantizationSuggestion(r: PlanRequest, weights: number): Suggestion | null {
  for (const type of COMPACTING) {
    const w: WeightTypes = { matrices: type };
    let total: number;
    let ok: boolean;
    try {
      if (sum(weightTensors(r.config, w)) >= weights) continue;
      ({ ok, total } = fits({ ...r, weights: w }));
    } catch {
      continue; // a type whose blocks do not divide this model's rows
    }
    if (ok)
      return { kind: 'quantization', type, total, text: `${type} weights (${formatBytes(total)} in all)` };
  }
  return null;
}

function inferenceSuggestions(r: InferenceRequest): Suggestion[] {
  const out: Suggestion[] = [];
  const m = largest(1, r.sequences - 1, (x) => ({ ...r, sequences: x }));
  if (m) {
    out.push({
      kind: 'sequences',
      sequences: m.x,
      total: m.total,
      text: `at most ${fmtInt(m.x)} sequence${m.x === 1 ? '' : 's'} at ${fmtInt(r.context)} positions (${formatBytes(m.total)})`,
    });
  }
  const t = largest(1, r.context - 1, (x) => ({ ...r, context: x }));
  if (t) {
    out.push({
      kind: 'context',
      context: t.x,
      total: t.total,
      text: `${fmtInt(r.sequences)} sequence${r.sequences === 1 ? '' : 's'} at most ${fmtInt(t.x)} positions long (${formatBytes(t.total)})`,
    });
  }
  if (r.maxRows !== undefined && r.maxRows > r.sequences) {
    const rows = largest(r.sequences, r.maxRows - 1, (x) => ({ ...r, maxRows: x }));
    if (rows) {
      out.push({
        kind: 'maxRows',
        maxRows: rows.x,
        total: rows.total,
        text: `prefill at most ${fmtInt(rows.x)} rows at a time (${formatBytes(rows.total)})`,
      });
    }
  }
  // an f16 KV cache needs no GPU feature (kvcache.ts packs two halves per u32): LlamaRunner's `kv`
  if ((r.kv ?? r.act ?? 'f32') === 'f32') {
    const f = fits({ ...r, kv: 'f16' });
    if (f.ok) {
      out.push({
        kind: 'kvF16',
        total: f.total,
        text: `an f16 KV cache, half the bytes (${formatBytes(f.total)})`,
      });
    }
  }
  return out;
}

function trainingSuggestions(r: TrainingRequest): Suggestion[] {
  const out: Suggestion[] = [];
  if (!r.recompute) {
    const f = fits({ ...r, recompute: true });
    if (f.ok) {
      out.push({
        kind: 'recompute',
        total: f.total,
        text: `turn on recompute (gradient checkpointing) (${formatBytes(f.total)})`,
      });
    }
  }
  const b = largest(1, r.batch - 1, (x) => ({ ...r, batch: x }));
  if (b) {
    out.push({
      kind: 'batch',
      batch: b.x,
      total: b.total,
      text: `a batch of at most ${fmtInt(b.x)} sequence${b.x === 1 ? '' : 's'} of ${fmtInt(r.seq)} tokens (${formatBytes(b.total)})`,
    });
  }
  const s = largest(1, r.seq - 1, (x) => ({ ...r, seq: x }));
  if (s) {
    out.push({
      kind: 'seq',
      seq: s.x,
      total: s.total,
      text: `sequences of at most ${fmtInt(s.x)} tokens at batch ${fmtInt(r.batch)} (${formatBytes(s.total)})`,
    });
  }
  const N = r.batch * r.seq;
  const rows = r.logitsChunkRows ?? N;
  if (rows > 1) {
    const k = largest(1, rows - 1, (x) => ({ ...r, logitsChunkRows: x }));
    if (k) {
      out.push({
        kind: 'logitsChunk',
        rows: k.x,
        total: k.total,
        text: `logits in chunks of at most ${fmtInt(k.x)} rows (${formatBytes(k.total)})`,
      });
    }
  }
  return out;
}

function describe(r: PlanRequest): string {
  if (r.kind === 'inference') {
    return `Inference with ${fmtInt(r.sequences)} sequence${r.sequences === 1 ? '' : 's'} × ${fmtInt(r.context)} positions`;
  }
  const v = r.variant?.kind ?? 'lora';
  return `${v === 'nce' ? 'An' : 'A'} ${STEP_SHORT[v]} training step on ${fmtInt(r.batch)} × ${fmtInt(r.seq)} tokens${r.recompute ? ' with recompute' : ''}`;
}

const ADAPTERS_NOTE: Record<Exclude<TrainVariant['kind'], 'lora'>, string> = {
  nat: 'positive LoRA, integration unit, frozen negative LoRA',
  nce: "student LoRA; NAT's two LoRAs and unit, frozen",
  linmix: 'positive LoRA, frozen negative LoRA',
};

const STEP_SHORT: Record<TrainVariant['kind'], string> = {
  lora: 'LoRA',
  nat: 'NAT',
  nce: 'NCE',
  linmix: 'linear-mix',
};

const STEP_NAME: Record<TrainVariant['kind'], string> = {
  lora: 'LoRA',
  nat: 'NAT (positive LoRA and integration unit beside the frozen negative LoRA)',
  nce: 'NCE (student LoRA beside the frozen NAT and negative models)',
  linmix: 'linear-mix (positive LoRA beside the frozen negative LoRA)',
};

const ITEM_LABEL: Record<Exclude<keyof PlanItems, 'total'>, string> = {
  weights: 'weights',
  kv: 'KV cache',
  activations: 'activations',
  logits: 'logits',
  adapters: 'adapters',
  optimizer: 'optimizer state',
  gradients: 'gradients',
  recompute: 'recompute buffers',
  scratch: 'scratch',
};

function refuse(
  r: PlanRequest,
  core: Core,
  budget: number,
  assumed: boolean,
): { error: EngineError; suggestions: Suggestion[] } {
  const suggestions = r.kind === 'inference' ? inferenceSuggestions(r) : trainingSuggestions(r);
  const q = quantizationSuggestion(r, core.items.weights);
  if (q) suggestions.push(q);
  const fix =
    suggestions.length > 0
      ? ` To fit: ${suggestions.map((s) => s.text).join('; or ')}.`
      : ` Nothing smaller of this model fits: the weights alone take ${formatBytes(core.items.weights)}; choose a smaller model${assumed ? '' : ' or a GPU with more memory'}.`;
  const assumption = assumed
    ? ` (${formatBytes(budget)} is an assumption: WebGPU does not report GPU memory; if your GPU has more, set the memory budget.)`
    : '';
  const big = core.oversize[0];
  if (big) {
    const over = big.bytes - big.limit;
    const more = core.oversize.length > 1 ? ` (and ${core.oversize.length - 1} more)` : '';
    return {
      error: new EngineError(
        'LIMIT_EXCEEDED',
        `${describe(r)} needs ${big.row ? `rows of "${big.name}"` : `the buffer "${big.name}"`}${more} of ${formatBytes(big.bytes)} ${big.row ? 'each' : 'in one piece'}, but this GPU binds at most ${formatBytes(big.limit)} per buffer (${formatBytes(over)} over).${fix}`,
      ),
      suggestions,
    };
  }
  const top = ITEM_NAMES.map((k) => [k, core.items[k]] as const)
    .filter(([, v]) => v > 0)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 2)
    .map(([k, v]) => `${ITEM_LABEL[k]} ${formatBytes(v)}`)
    .join(', ');
  return {
    error: new EngineError(
      'OUT_OF_MEMORY',
      `${describe(r)} needs ${formatBytes(core.items.total)} (${top}, …) but the memory budget is ${formatBytes(budget)}: ${formatBytes(core.items.total - budget)} over.${fix}${assumption}`,
    ),
    suggestions,
  };
}

function positiveInt(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 1)
    throw new EngineError('BAD_ARGUMENT', `${what} is ${v}; it must be a whole number ≥ 1.`);
}

function validate(r: PlanRequest): void {
  validateConfig(r.config);
  const { maxBufferSize, maxStorageBufferBindingSize, memoryBudget } = r.limits;
  for (const [k, v] of [
    ['maxBufferSize', maxBufferSize],
    ['maxStorageBufferBindingSize', maxStorageBufferBindingSize],
  ] as const) {
    if (!(v > 0))
      throw new EngineError('BAD_ARGUMENT', `the device limit ${k} is ${v}; pass the GPU's limits.`);
  }
  if (memoryBudget !== undefined && !(memoryBudget > 0)) {
    throw new EngineError(
      'BAD_ARGUMENT',
      `the memory budget is ${memoryBudget} bytes; give a positive number.`,
    );
  }
  const loras = r.kind === 'inference' ? (r.adapters ?? []) : [r.lora];
  for (const s of loras) {
    positiveInt(s.rank, 'the LoRA rank');
    if (s.targets.length === 0)
      throw new EngineError('BAD_ARGUMENT', 'a LoRA adapter needs at least one target.');
  }
  const maxT = r.config.maxSeqLen;
  if (r.kind === 'inference') {
    positiveInt(r.sequences, 'the number of sequences');
    positiveInt(r.context, 'the context length');
    if (r.maxRows !== undefined) positiveInt(r.maxRows, 'maxRows');
    if (r.context > maxT) {
      throw new EngineError(
        'BAD_ARGUMENT',
        `a context of ${fmtInt(r.context)} positions is longer than this model's ${fmtInt(maxT)}; ask for at most ${fmtInt(maxT)}.`,
      );
    }
  } else {
    positiveInt(r.batch, 'the batch size');
    positiveInt(r.seq, 'the sequence length');
    if (r.logitsChunkRows !== undefined) positiveInt(r.logitsChunkRows, 'logitsChunkRows');
    if (r.seq > maxT) {
      throw new EngineError(
        'BAD_ARGUMENT',
        `sequences of ${fmtInt(r.seq)} tokens are longer than this model's ${fmtInt(maxT)} positions; use at most ${fmtInt(maxT)}.`,
      );
    }
  }
}

/**
 * The plan for `req`: itemised bytes, the tensors to split across bindings, and a verdict. Throws
 * EngineError('BAD_ARGUMENT') only for a malformed request; a plan that does not fit is returned
 * with verdict 'refused' and its `error` (LIMIT_EXCEEDED or OUT_OF_MEMORY) for the caller to throw.
 */
export function planMemory(req: PlanRequest): Plan {
  validate(req);
  const core = evaluate(req);
  const budget = budgetOf(req);
  const budgetAssumed = req.limits.memoryBudget === undefined;
  const ok = core.oversize.length === 0 && core.items.total <= budget;
  const refusal = ok ? null : refuse(req, core, budget, budgetAssumed);
  return {
    request: req,
    items: core.items,
    budget,
    budgetAssumed,
    bindingLimit: bindingLimit(req.limits),
    splits: core.splits,
    oversize: core.oversize,
    training: core.training,
    verdict: ok ? 'ok' : 'refused',
    error: refusal?.error ?? null,
    suggestions: refusal?.suggestions ?? [],
  };
}

/** Throws the plan's refusal, if any; returns the plan otherwise. */
export function requirePlan(plan: Plan): Plan {
  if (plan.error) throw plan.error;
  return plan;
}

/** "f32 activations/KV", or "f32 activations, f16 KV" where the KV cache has its own type. */
function dtypes(r: InferenceRequest): string {
  const act = r.act ?? 'f32';
  const kv = r.kv ?? act;
  return kv === act ? `${act} activations/KV` : `${act} activations, ${kv} KV`;
}

/** A short table of the plan for the UI and the CLI. */
export function formatPlan(plan: Plan): string {
  const r = plan.request;
  const c = r.config;
  const head =
    r.kind === 'inference'
      ? `inference: ${fmtInt(r.sequences)} × ${fmtInt(r.context)} positions, ${dtypes(r)}`
      : `${STEP_NAME[r.variant?.kind ?? 'lora']} training: ${fmtInt(r.batch)} × ${fmtInt(r.seq)} tokens, rank ${r.lora.rank} on ${r.lora.targets.join(',')}, recompute ${r.recompute ? 'on' : 'off'}`;
  const types = new Map<string, number>();
  for (const t of weightTensors(c, r.weights)) types.set(t.type, (types.get(t.type) ?? 0) + 1);
  const t = plan.training;
  const note: Partial<Record<keyof PlanItems, string>> = {
    weights: [...types].map(([k, n]) => `${n} × ${k}`).join(', '),
    logits: `${fmtInt(r.kind === 'inference' ? Math.max(r.maxRows ?? 64, r.sequences) : Math.min(r.logitsChunkRows ?? Infinity, r.batch * r.seq))} rows × ${fmtInt(c.vocabSize)} f32${r.kind === 'training' ? ', and their gradient' : ''}`,
  };
  if (r.kind === 'inference') {
    const perToken = 2 * c.nLayers * kvDim(c) * ((r.kv ?? r.act) === 'f16' ? 2 : 4);
    const shown = perToken >= 65536 ? `${+(perToken / 2 ** 20).toFixed(4)} MiB` : formatBytes(perToken);
    note.kv = `${shown} per token per sequence`;
  }
  if (t && r.kind === 'training') {
    note.activations = r.recompute
      ? `residual stream at ${c.nLayers + 1} layer boundaries, head`
      : `all ${c.nLayers} layers' saved tensors and their gradients`;
    if (r.recompute)
      note.recompute = `one layer re-run: ${formatBytes(t.layerForward)} forward, ${formatBytes(t.layerBackward)} backward`;
    note.scratch = `pool rounding ${formatBytes(t.poolSlack)}`;
    const v = r.variant?.kind ?? 'lora';
    if (v === 'nce') note.logits += `; the teacher's and the negative model's logits`;
    if (v !== 'lora') note.adapters = ADAPTERS_NOTE[v];
    if (
      t.frozenPeak > 0 &&
      plan.items.recompute > (r.recompute ? t.layerForward + t.layerBackward + t.carried : 0)
    )
      note.recompute = `the NAT teacher's forward at its peak`;
  }
  const rows = ITEM_NAMES.filter((k) => plan.items[k] > 0).map(
    (k) => [k, ITEM_LABEL[k], plan.items[k]] as const,
  );
  const w = Math.max(...rows.map(([, k]) => k.length), 'total'.length);
  const out = [head];
  for (const [key, k, v] of rows) {
    const n = note[key];
    out.push(`  ${k.padEnd(w)}  ${formatBytes(v).padStart(10)}${n ? `  ${n}` : ''}`);
  }
  out.push(
    `  ${'total'.padEnd(w)}  ${formatBytes(plan.items.total).padStart(10)}  of a ${formatBytes(plan.budget)} budget${plan.budgetAssumed ? ' (assumed: WebGPU does not report GPU memory)' : ''}`,
  );
  for (const s of plan.splits) {
    out.push(
      `  split ${s.count > 1 ? `${s.count} × ` : ''}${s.name} (${formatBytes(s.bytes)}) into ${s.parts} parts of ≤ ${fmtInt(s.rowsPerPart)} rows`,
    );
  }
  out.push(plan.error ? `  refused (${plan.error.code}): ${plan.error.message}` : '  fits');
  return out.join('\n');
}
