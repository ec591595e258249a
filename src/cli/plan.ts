/**
 * `d2g plan`: the memory planner (src/engine/plan.ts, docs/planner.md) from the command line — the
 * bytes a model needs for inference (m sequences × context) or for one LoRA training step, against
 * a memory budget and a per-binding limit, before anything is downloaded or loaded. The model is a
 * file or folder (`--model`: config and per-tensor weight types read from its header, as `inspect`
 * does) or a preset (`--config 7b|13b|stories260K|arith-student`).
 *
 * Exit 0 when the plan fits, 2 when it is refused (the table, the refusal and, for each suggestion,
 * the option that gives it); bad arguments and bad files are EngineErrors (exit 1 in d2g.ts).
 *
 * @example
 *   npm run d2g -- plan --config 7b --weights q4_0 --m 16 --context 1024 --kv f16 --budget 8GiB
 *   npm run d2g -- plan --model llama-2-7b.Q4_K_M.gguf --train --seq 512 --recompute --budget 8GB
 */
import { parseArgs } from 'node:util';
import { EngineError, formatBytes, type EngineErrorCode } from '../engine/errors.ts';
import type { LlamaConfig } from '../engine/model/config.ts';
import { LINEAR_SITES, siteShape, type LinearSite, type LoraTarget } from '../engine/model/llama.ts';
import {
  WEBGPU_DEFAULT_LIMITS,
  WEIGHT_LAYOUT,
  formatPlan,
  planMemory,
  type ActDType,
  type DeviceLimits,
  type LoraSpec,
  type Plan,
  type PlanRequest,
  type Suggestion,
  type WeightType,
  type WeightTypes,
  type TrainVariant,
} from '../engine/plan.ts';
import { defaultNatWidth } from '../engine/model/nat.ts';
import { describeConfig, inspectModel, weightTypesFromTensors } from './inspect.ts';
import { fromFile } from './files.ts';
import { readGgufHeader } from '../engine/io/gguf.ts';
import { ggufLoadPlan } from '../engine/io/load-gguf.ts';

export interface Preset {
  config: LlamaConfig;
  /** --weights when none is given. */
  weights: WeightType;
  about: string;
}

const llama = (
  dim: number,
  hiddenDim: number,
  nLayers: number,
  nHeads: number,
  maxSeqLen: number,
): LlamaConfig => ({
  dim,
  hiddenDim,
  nLayers,
  nHeads,
  nKvHeads: nHeads,
  vocabSize: 32000,
  maxSeqLen,
  ropeTheta: 10000,
  normEps: 1e-5,
  sharedClassifier: false,
});

/**
 * Model shapes to plan without a file. 7b and 13b are LLaMA's (Touvron et al. 2023) with Llama 2's
 * context of 4,096; stories260K and arith-student are public/models' two files.
 */
export const PRESETS: Readonly<Record<string, Preset>> = {
  '7b': { config: llama(4096, 11008, 32, 32, 4096), weights: 'q4_0', about: 'LLaMA-7B / Llama 2 7B shapes' },
  '13b': {
    config: llama(5120, 13824, 40, 40, 4096),
    weights: 'q4_0',
    about: 'LLaMA-13B / Llama 2 13B shapes',
  },
  stories260K: {
    config: {
      dim: 64,
      hiddenDim: 172,
      nLayers: 5,
      nHeads: 8,
      nKvHeads: 4,
      vocabSize: 512,
      maxSeqLen: 512,
      ropeTheta: 10000,
      normEps: 1e-5,
      sharedClassifier: true,
    },
    weights: 'f32',
    about: "llama2.c's stories260K (public/models/stories260K.bin)",
  },
  'arith-student': {
    config: {
      dim: 64,
      hiddenDim: 176,
      nLayers: 4,
      nHeads: 4,
      nKvHeads: 4,
      vocabSize: 77,
      maxSeqLen: 256,
      ropeTheta: 10000,
      normEps: 1e-5,
      sharedClassifier: true,
    },
    weights: 'f32',
    about: 'the built-in student (public/models/arith-student.safetensors)',
  },
};

const WEIGHT_TYPES = Object.keys(WEIGHT_LAYOUT) as WeightType[];
const LORA_TARGETS: readonly LoraTarget[] = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'];

/**
 * Every matrix in `type`, except those whose rows are not a whole number of its blocks: they stay
 * f32, as loadLlama (src/engine/model/llama.ts) keeps them (stories260K's w2 rows of 172 in q4_0).
 */
export function uniformWeightTypes(c: LlamaConfig, type: WeightType): WeightTypes {
  const fits = (cols: number) => cols % WEIGHT_LAYOUT[type].values === 0;
  const sites: Partial<Record<LinearSite, WeightType>> = {};
  for (const site of LINEAR_SITES) if (!fits(siteShape(c, site)[1])) sites[site] = 'f32';
  return {
    matrices: type,
    ...(fits(c.dim) ? {} : { tokenEmbedding: 'f32' as const, wcls: 'f32' as const }),
    ...(Object.keys(sites).length > 0 ? { sites } : {}),
  };
}

const UNITS: Record<string, number> = {
  b: 1,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
};

/** '8GiB' → 8·2^30, '8GB' → 8·10^9, '512MiB', '1.5GiB', '1000000' (bytes). */
export function parseBytes(v: string, flag: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(v);
  const unit = UNITS[(m?.[2] || 'b').toLowerCase()];
  if (!m || unit === undefined) {
    throw new EngineError(
      'BAD_ARGUMENT',
      `--${flag} expects a size such as 8GiB, 8GB, 512MiB or a number of bytes, got "${v}"`,
    );
  }
  const bytes = Math.round(Number(m[1]) * unit);
  if (!(bytes > 0)) throw new EngineError('BAD_ARGUMENT', `--${flag} must be more than 0 bytes, got "${v}"`);
  return bytes;
}

function int(v: string | undefined, flag: string, dflt: number, min = 1): number {
  if (v === undefined) return dflt;
  const x = Number(v);
  if (!Number.isInteger(x) || x < min) {
    throw new EngineError('BAD_ARGUMENT', `--${flag} expects a whole number ≥ ${min}, got "${v}"`);
  }
  return x;
}

/** The option that turns a suggestion into the plan that fits. */
export function suggestionFlag(s: Suggestion): string {
  switch (s.kind) {
    case 'sequences':
      return `--m ${s.sequences}`;
    case 'context':
      return `--context ${s.context}`;
    case 'maxRows':
      return `(prefill ${s.maxRows} rows at a time)`;
    case 'kvF16':
      return '--kv f16';
    case 'recompute':
      return '--recompute';
    case 'batch':
      return `--batch ${s.batch}`;
    case 'seq':
      return `--seq ${s.seq}`;
    case 'logitsChunk':
      return `--logits-chunk ${s.rows}`;
    case 'quantization':
      return `--weights ${s.type}`;
  }
}

export interface PlanModel {
  /** 'preset' or the file format. */
  source: string;
  name: string;
  about: string;
  config: LlamaConfig;
  weights: WeightTypes;
}

/** The plan as one JSON object (`plan --json`). */
export function planJson(model: PlanModel, plan: Plan): Record<string, unknown> {
  const { config: _c, weights: _w, limits, ...request } = plan.request;
  return {
    model,
    limits: { ...limits, memoryBudget: limits.memoryBudget ?? null },
    request,
    items: plan.items,
    budget: plan.budget,
    budgetAssumed: plan.budgetAssumed,
    bindingLimit: plan.bindingLimit,
    splits: plan.splits,
    oversize: plan.oversize,
    training: plan.training,
    verdict: plan.verdict,
    error: plan.error ? { code: plan.error.code, message: plan.error.message } : null,
    suggestions: plan.suggestions.map((s) => ({ ...s, flag: suggestionFlag(s) })),
  };
}

/** `--stage kd|neg|nat|nce|linmix|...` and `--du N`: what the step runs besides its trained LoRA. */
function trainVariant(
  stage: string | undefined,
  du: string | undefined,
  c: LlamaConfig,
  bad: (msg: string) => never,
): TrainVariant {
  const width = int(du, 'du', defaultNatWidth(c));
  if (du !== undefined && stage !== 'nat' && stage !== 'nce')
    bad("--du is the NAT integration unit's width: use it with --stage nat or --stage nce");
  switch (stage ?? 'kd') {
    case 'nat':
      return { kind: 'nat', du: width };
    case 'nce':
      return { kind: 'nce', du: width };
    case 'linmix':
      return { kind: 'linmix' };
    case 'kd':
    case 'neg':
    case 'mix':
    case 'nt':
    case 'ul':
    case 'cl':
    case 'rank':
      return { kind: 'lora' };
    default:
      return bad(`--stage is one of kd, neg, mix, nat, linmix, nce, rank, nt, ul, cl; got "${stage}"`);
  }
}

export async function planCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      config: { type: 'string' },
      weights: { type: 'string' },
      m: { type: 'string' },
      context: { type: 'string' },
      kv: { type: 'string' },
      adapters: { type: 'string' },
      train: { type: 'boolean', default: false },
      batch: { type: 'string' },
      seq: { type: 'string' },
      rank: { type: 'string' },
      targets: { type: 'string' },
      recompute: { type: 'boolean', default: false },
      'logits-chunk': { type: 'string' },
      stage: { type: 'string' },
      du: { type: 'string' },
      budget: { type: 'string' },
      'binding-limit': { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const bad = (msg: string): never => {
    throw new EngineError('BAD_ARGUMENT', msg);
  };
  if ((values.model === undefined) === (values.config === undefined))
    bad('plan needs either --model FILE_OR_DIR or --config 7b|13b|stories260K|arith-student');
  if (values.weights !== undefined && !WEIGHT_TYPES.includes(values.weights as WeightType))
    bad(`--weights is one of ${WEIGHT_TYPES.join(', ')}, got "${values.weights}"`);
  const weightsArg = values.weights as WeightType | undefined;
  const train = values.train;
  const wrongMode = (
    train
      ? (['m', 'context', 'kv', 'adapters'] as const)
      : (['batch', 'seq', 'recompute', 'logits-chunk', 'stage', 'du'] as const)
  ).filter((k) => values[k] !== undefined && values[k] !== false);
  if (wrongMode.length > 0)
    bad(
      train
        ? `--${wrongMode.join(', --')} ${wrongMode.length === 1 ? 'is' : 'are'} for inference; a training plan takes --batch, --seq, --rank, --targets, --recompute, --stage`
        : `--${wrongMode.join(', --')} ${wrongMode.length === 1 ? 'is' : 'are'} for a training plan: add --train`,
    );
  if (values.kv !== undefined && values.kv !== 'f32' && values.kv !== 'f16')
    bad(`--kv is f32 or f16, got "${values.kv}"`);
  const adapters = int(values.adapters, 'adapters', 0, 0);
  if (!train && adapters === 0 && (values.rank !== undefined || values.targets !== undefined))
    bad('--rank and --targets describe LoRA adapters: use them with --train or --adapters N');

  let model: PlanModel;
  if (values.config !== undefined) {
    const p = PRESETS[values.config];
    if (!p) return bad(`--config is one of ${Object.keys(PRESETS).join(', ')}, got "${values.config}"`);
    const type = weightsArg ?? p.weights;
    model = {
      source: 'preset',
      name: values.config,
      about: p.about,
      config: p.config,
      weights: uniformWeightTypes(p.config, type),
    };
  } else {
    const { report, weights } = await inspectModel(values.model!);
    if (!report.config || (!weights && !weightsArg)) {
      const p = report.problem;
      throw new EngineError(
        (p?.code ?? 'BAD_FILE') as EngineErrorCode,
        p?.message ?? `${report.name}: dust2gold cannot load this model.`,
      );
    }
    model = {
      source: report.format,
      name: report.name,
      about: weightsArg ? `${report.formatDetail}; weights as --weights ${weightsArg}` : report.formatDetail,
      config: report.config,
      weights: weightsArg ? uniformWeightTypes(report.config, weightsArg) : weights!,
    };
  }
  const c = model.config;

  const binding =
    values['binding-limit'] !== undefined ? parseBytes(values['binding-limit'], 'binding-limit') : undefined;
  const limits: DeviceLimits = {
    ...(binding !== undefined
      ? { maxBufferSize: binding, maxStorageBufferBindingSize: binding }
      : WEBGPU_DEFAULT_LIMITS),
    ...(values.budget !== undefined ? { memoryBudget: parseBytes(values.budget, 'budget') } : {}),
  };
  if (model.source === 'gguf' && !weightsArg) {
    // what the loader will hold, not the file's types: a K-quant embedding becomes q8_0 or q4_0
    // (whichever fits one binding), F16 matrices f32 (load-gguf.ts)
    const file = await readGgufHeader(await fromFile(values.model!));
    const loaded = ggufLoadPlan(file, {}, limits.maxStorageBufferBindingSize, c);
    model.weights = weightTypesFromTensors(new Map(loaded.map((t) => [t.label, t.dtype as WeightType])));
    model.about += '; weights as the GPU loader stores them';
  }
  const targets = (values.targets ?? 'q,v').split(',').map((t) => t.trim());
  for (const t of targets) {
    if (!LORA_TARGETS.includes(t as LoraTarget))
      bad(`--targets takes a comma-separated list of ${LORA_TARGETS.join(', ')}; "${t}" is not one`);
  }
  const lora: LoraSpec = { rank: int(values.rank, 'rank', 8), targets: targets as LoraTarget[] };

  let req: PlanRequest;
  if (train) {
    const chunk = values['logits-chunk'];
    req = {
      kind: 'training',
      config: c,
      weights: model.weights,
      limits,
      batch: int(values.batch, 'batch', 1),
      seq: int(values.seq, 'seq', Math.min(512, c.maxSeqLen)),
      lora,
      recompute: values.recompute,
      ...(chunk !== undefined ? { logitsChunkRows: int(chunk, 'logits-chunk', 1) } : {}),
      variant: trainVariant(values.stage, values.du, c, bad),
    };
  } else {
    req = {
      kind: 'inference',
      config: c,
      weights: model.weights,
      limits,
      sequences: int(values.m, 'm', 16),
      context: int(values.context, 'context', Math.min(1024, c.maxSeqLen)),
      act: (values.kv ?? 'f32') as ActDType,
      ...(adapters > 0 ? { adapters: Array.from({ length: adapters }, () => lora) } : {}),
    };
  }
  const plan = planMemory(req);

  if (values.json) {
    process.stdout.write(JSON.stringify(planJson(model, plan), null, 2) + '\n');
  } else {
    const out = [
      `model   ${model.name} (${model.about})`,
      `        ${describeConfig(c)}`,
      `limits  ${plan.budgetAssumed ? 'no --budget: assuming' : 'budget'} ${formatBytes(plan.budget)}, buffers bound at most ${formatBytes(plan.bindingLimit)} each${binding === undefined ? " (WebGPU's default limits; --binding-limit)" : ''}`,
      '',
      formatPlan(plan),
    ];
    if (plan.suggestions.length > 0) {
      const flags = plan.suggestions.map(suggestionFlag);
      const w = Math.max(...flags.map((f) => f.length));
      out.push('', 'to fit, change one of:');
      plan.suggestions.forEach((s, i) => out.push(`  ${flags[i]!.padEnd(w)}  ${s.text}`));
    }
    process.stdout.write(out.join('\n') + '\n');
  }
  return plan.verdict === 'ok' ? 0 : 2;
}
