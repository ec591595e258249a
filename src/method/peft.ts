/**
 * Adapters to and from Hugging Face PEFT, so they travel to PyTorch and back.
 *
 * PEFT's LoRA folder (peft `save_pretrained`, `safe_serialization=True`):
 *   adapter_config.json        {peft_type: "LORA", r, lora_alpha, lora_dropout, target_modules,
 *                              bias: "none", task_type: "CAUSAL_LM", base_model_name_or_path, ...}
 *   adapter_model.safetensors  metadata {format: "pt"}; for a LlamaForCausalLM, per layer i:
 *                              base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight  (r, in)
 *                              base_model.model.model.layers.{i}.self_attn.q_proj.lora_B.weight  (out, r)
 *                              ... k_proj, v_proj, o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj
 * PEFT's forward is `y += lora_B(lora_A(dropout(x))) · scaling`, scaling = lora_alpha / r (not
 * rsLoRA), lora_A / lora_B being nn.Linear weights (out, in). Ours (src/engine/model/lora.ts) is
 * the same: A (R, in), B (out, R), y += (alpha / R) · B A x. So A, r, alpha and dropout carry over
 * unchanged, and so does B — except for q_proj and k_proj:
 *
 * RoPE. Our engine (like llama2.c and Meta's checkpoints) rotates adjacent pairs (2i, 2i+1) of each
 * head; transformers' LLaMA rotates (i, i + HS/2) and its checkpoints store the rows of q_proj and
 * k_proj permuted to match (convert_llama_weights_to_hf.py: `w.view(NH, HS/2, 2, in).transpose(1,
 * 2)`; k_proj with NKV heads). A LoRA's B produces those rows, so its rows get the same permutation:
 * HF row h·HS + j·HS/2 + i = our row h·HS + 2i + j. A is untouched (it reads the input). With
 * `qkLayout: 'llama2c'` the rows stay as they are (for a PyTorch model with our conventions, such
 * as tools/student_lib.py).
 *
 * Adapter sets travel as zips of PEFT folders: src/method/adapter-zip.ts.
 *
 * @example
 *   const peft = loraToPeft(state, config, { baseModel: 'arith-student' });
 *   const back = peftToLora(peft['adapter_config.json'], peft['adapter_model.safetensors'], config);
 *   // back equals state, tensor for tensor
 */
import { strToU8 } from 'fflate';
import { EngineError } from '../engine/errors.ts';
import { readSafetensors, toFloat32, writeSafetensors } from '../engine/io/safetensors.ts';
import { headSize, kvDim, type LlamaConfig } from '../engine/model/config.ts';
import { SITE_OF_TARGET, siteShape, type LoraTarget } from '../engine/model/llama.ts';
import type { LoraState } from '../engine/model/lora.ts';
import { permuteRopeRows } from '../engine/model/rope-order.ts';

export { permuteRopeRows };

export const PEFT_CONFIG_FILE = 'adapter_config.json';
export const PEFT_WEIGHTS_FILE = 'adapter_model.safetensors';

/** Our target → the module path under `model.layers.{i}` in transformers' LlamaForCausalLM. */
export const PEFT_MODULES: Readonly<Record<LoraTarget, string>> = {
  q: 'self_attn.q_proj',
  k: 'self_attn.k_proj',
  v: 'self_attn.v_proj',
  o: 'self_attn.o_proj',
  gate: 'mlp.gate_proj',
  up: 'mlp.up_proj',
  down: 'mlp.down_proj',
};
const TARGETS = Object.keys(PEFT_MODULES) as LoraTarget[];
const HF_NAMES = TARGETS.map((t) => PEFT_MODULES[t].split('.')[1]!);
const TARGET_OF_NAME = new Map(TARGETS.map((t, i) => [HF_NAMES[i]!, t]));

/** The safetensors key of one LoRA matrix, exactly as PEFT saves it. */
export function peftKey(layer: number, target: LoraTarget, m: 'A' | 'B'): string {
  return `base_model.model.model.layers.${layer}.${PEFT_MODULES[target]}.lora_${m}.weight`;
}
const KEY_RE = /^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.([a-z_]+)\.lora_([AB])\.weight$/;

/** How q_proj / k_proj rows are ordered on the PyTorch side (see the file header). */
export type QkLayout = 'hf' | 'llama2c';

export interface PeftOptions {
  /** `base_model_name_or_path` written into adapter_config.json. */
  baseModel?: string;
  /** Default 'hf': transformers' LLaMA layout. */
  qkLayout?: QkLayout;
}

/** The two files of a PEFT LoRA folder. */
export interface PeftFiles {
  [PEFT_CONFIG_FILE]: Uint8Array;
  [PEFT_WEIGHTS_FILE]: Uint8Array;
}

function ropeHeads(model: LlamaConfig, t: LoraTarget): number | null {
  return t === 'q' ? model.nHeads : t === 'k' ? model.nKvHeads : null;
}

function modelShape(c: LlamaConfig): LoraState['model'] {
  return { dim: c.dim, hiddenDim: c.hiddenDim, nLayers: c.nLayers, kvDim: kvDim(c) };
}

/** Ours → PEFT. Throws SHAPE_MISMATCH when the adapter is not for `model`. */
export function loraToPeft(state: LoraState, model: LlamaConfig, opts: PeftOptions = {}): PeftFiles {
  const want = modelShape(model);
  for (const k of Object.keys(want) as (keyof typeof want)[])
    if (state.model[k] !== want[k])
      throw new EngineError(
        'SHAPE_MISMATCH',
        `This adapter was trained for another model (${k} ${state.model[k]}, the model in use has ${want[k]}). Choose the model it was made for in Models, then export again.`,
      );
  const { rank, alpha, dropout, targets } = state.config;
  const hf = (opts.qkLayout ?? 'hf') === 'hf';
  const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  for (let l = 0; l < model.nLayers; l++)
    for (const t of targets) {
      const [out, inp] = siteShape(model, SITE_OF_TARGET[t]);
      for (const [m, shape] of [
        ['A', [rank, inp]],
        ['B', [out, rank]],
      ] as const) {
        const src = state.tensors[`layers.${l}.${t}.${m}`];
        if (!src || src.data.length !== shape[0] * shape[1])
          throw new EngineError(
            'SHAPE_MISMATCH',
            `The adapter's tensor layers.${l}.${t}.${m} is missing or has the wrong size (want ${shape.join('×')}): the file is damaged; train or import it again.`,
          );
        const heads = ropeHeads(model, t);
        const data =
          m === 'B' && hf && heads !== null
            ? permuteRopeRows(src.data, heads, headSize(model), true)
            : src.data;
        tensors[peftKey(l, t, m)] = { dtype: 'F32', shape: [...shape], data };
      }
    }
  // safetensors (Python) stores tensors sorted by name; readers do not care, but the bytes match
  const sorted: typeof tensors = {};
  for (const k of Object.keys(tensors).sort()) sorted[k] = tensors[k]!;
  const config = {
    alpha_pattern: {},
    base_model_name_or_path: opts.baseModel ?? null,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: alpha,
    lora_dropout: dropout,
    modules_to_save: null,
    peft_type: 'LORA',
    r: rank,
    rank_pattern: {},
    revision: null,
    target_modules: targets.map((t) => PEFT_MODULES[t].split('.')[1]!),
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: false,
  };
  return {
    [PEFT_CONFIG_FILE]: strToU8(JSON.stringify(config, null, 2) + '\n'),
    [PEFT_WEIGHTS_FILE]: writeSafetensors(sorted, { format: 'pt' }),
  };
}

/** The bytes as an ArrayBuffer of their own (a view's buffer may be larger). */
export function bytesOf(b: ArrayBuffer | Uint8Array): ArrayBuffer {
  return b instanceof ArrayBuffer
    ? b
    : (b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
}

const refuse = (what: string): never => {
  throw new EngineError('BAD_FILE', `${PEFT_CONFIG_FILE}: ${what}`);
};

/** The part of adapter_config.json we read, checked; throws BAD_FILE with what to do. */
function readPeftConfig(bytes: ArrayBuffer): {
  r: number;
  alpha: number;
  dropout: number;
  targets: LoraTarget[] | null;
  base: string | null;
} {
  let c: Record<string, unknown>;
  try {
    const j: unknown = JSON.parse(new TextDecoder().decode(bytes));
    if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new Error('not an object');
    c = j as Record<string, unknown>;
  } catch {
    return refuse(
      'this is not JSON, so it is not a PEFT adapter configuration. Pick the adapter_config.json that PEFT saved.',
    );
  }
  if (c.peft_type !== 'LORA')
    refuse(
      `this is a PEFT "${String(c.peft_type ?? 'unknown')}" adapter; dust2gold reads LoRA adapters only (peft_type "LORA").`,
    );
  if (c.use_dora === true)
    refuse(
      'this is a DoRA adapter (use_dora: true), which dust2gold cannot run. Save a plain LoRA (use_dora=False).',
    );
  if (c.use_rslora === true)
    refuse(
      'this adapter uses rank-stabilized scaling (use_rslora: true, lora_alpha/√r); dust2gold scales by lora_alpha/r. Train it with use_rslora=False.',
    );
  if (c.fan_in_fan_out === true)
    refuse('fan_in_fan_out is true (GPT-2 style layers); a LLaMA adapter has it false.');
  if (c.bias !== undefined && c.bias !== 'none')
    refuse(`bias is "${String(c.bias)}"; dust2gold's LoRA has no bias terms. Train it with bias="none".`);
  if (c.lora_bias === true) refuse("lora_bias is true; dust2gold's LoRA has no bias terms.");
  for (const k of ['rank_pattern', 'alpha_pattern'])
    if (c[k] && typeof c[k] === 'object' && Object.keys(c[k]).length > 0)
      refuse(
        `${k} gives some layers their own rank or alpha; dust2gold needs one r and one lora_alpha for all.`,
      );
  if (c.layers_to_transform !== undefined && c.layers_to_transform !== null)
    refuse('layers_to_transform limits the adapter to some layers; dust2gold needs it on every layer.');
  if (Array.isArray(c.modules_to_save) && c.modules_to_save.length > 0)
    refuse(
      `it also saves whole modules (${c.modules_to_save.map(String).join(', ')}), which dust2gold cannot load. Train without modules_to_save.`,
    );
  const init = c.init_lora_weights;
  if (typeof init === 'string' && /^(pissa|olora|corda|loftq|mica)/i.test(init))
    refuse(
      `init_lora_weights "${init}" changes the base model's weights as well, so the adapter does not fit the original model.`,
    );
  const r = c.r;
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1)
    return refuse(`r is ${String(r)}, not a positive integer.`);
  const alpha = c.lora_alpha ?? 8; // PEFT's default
  if (typeof alpha !== 'number' || !Number.isFinite(alpha))
    return refuse(`lora_alpha is ${String(alpha)}, not a number.`);
  const dropout = c.lora_dropout ?? 0;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1))
    return refuse(`lora_dropout is ${String(dropout)}, not a probability.`);
  let targets: LoraTarget[] | null = null;
  const tm = c.target_modules;
  if (Array.isArray(tm)) {
    targets = [];
    for (const m of tm) {
      const name = String(m).split('.').pop()!;
      const t = TARGET_OF_NAME.get(name);
      if (!t)
        refuse(
          `target module "${String(m)}" is not one of the LLaMA layers dust2gold adapts (${HF_NAMES.join(', ')}).`,
        );
      else if (!targets.includes(t)) targets.push(t);
    }
  } else if (typeof tm !== 'string') refuse('target_modules is missing.');
  const base = typeof c.base_model_name_or_path === 'string' ? c.base_model_name_or_path : null;
  return { r, alpha, dropout, targets, base };
}

/**
 * PEFT → ours, checked against `model` (the base model in use): every layer, every target listed,
 * the shapes of `model`. Throws EngineError (BAD_FILE, SHAPE_MISMATCH) with what to do.
 */
export function peftToLora(
  configBytes: ArrayBuffer | Uint8Array,
  weightBytes: ArrayBuffer | Uint8Array,
  model: LlamaConfig,
  opts: PeftOptions = {},
): LoraState & { base: string | null } {
  const pc = readPeftConfig(bytesOf(configBytes));
  const { metadata: _, tensors } = readSafetensors(bytesOf(weightBytes));
  const forBase = pc.base ? ` It says it was made for "${pc.base}".` : '';
  const found = new Map<string, Float32Array>();
  const seen = new Set<LoraTarget>();
  let maxLayer = -1;
  for (const [key, t] of tensors) {
    const m = KEY_RE.exec(key);
    const target = m ? TARGET_OF_NAME.get(m[3]!) : undefined;
    if (!m || !target || PEFT_MODULES[target] !== `${m[2]}.${m[3]}`)
      throw new EngineError(
        'BAD_FILE',
        `${PEFT_WEIGHTS_FILE} holds "${key}", which is not a LoRA matrix of a LLaMA layer (base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight, ...). Only LoRA adapters for LLaMA-architecture models can be imported.`,
      );
    const layer = Number(m[1]);
    maxLayer = Math.max(maxLayer, layer);
    const ab = m[4] as 'A' | 'B';
    const [out, inp] = siteShape(model, SITE_OF_TARGET[target]);
    const want = ab === 'A' ? [pc.r, inp] : [out, pc.r];
    if (layer < model.nLayers && (t.shape.length !== 2 || t.shape[0] !== want[0] || t.shape[1] !== want[1]))
      throw new EngineError(
        'SHAPE_MISMATCH',
        `This adapter was made for another model: its ${HF_NAMES[TARGETS.indexOf(target)]} lora_${ab} is ${t.shape.join('×')}, the model in use needs ${want.join('×')} (r ${pc.r}, width ${model.dim}).${forBase} Choose the model it was made for above, then import again.`,
      );
    if (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'BF16')
      throw new EngineError(
        'BAD_FILE',
        `${PEFT_WEIGHTS_FILE}: ${key} is ${t.dtype}; LoRA weights must be F32, F16 or BF16.`,
      );
    found.set(`layers.${layer}.${target}.${ab}`, toFloat32(t));
    seen.add(target);
  }
  if (found.size === 0)
    throw new EngineError(
      'BAD_FILE',
      `${PEFT_WEIGHTS_FILE} holds no LoRA weights: pick the file PEFT saved next to ${PEFT_CONFIG_FILE}.`,
    );
  if (maxLayer + 1 !== model.nLayers)
    throw new EngineError(
      'SHAPE_MISMATCH',
      `This adapter was made for a model with ${maxLayer + 1 > model.nLayers ? 'more' : 'fewer'} layers (${maxLayer + 1}); the model in use has ${model.nLayers}.${forBase} Choose the model it was made for above, then import again.`,
    );
  const targets = pc.targets ?? TARGETS.filter((t) => seen.has(t));
  for (const t of seen)
    if (!targets.includes(t))
      throw new EngineError(
        'BAD_FILE',
        `${PEFT_WEIGHTS_FILE} has weights for ${HF_NAMES[TARGETS.indexOf(t)]}, which ${PEFT_CONFIG_FILE} does not list in target_modules: the two files do not belong together.`,
      );
  const hf = (opts.qkLayout ?? 'hf') === 'hf';
  const out: LoraState['tensors'] = {};
  for (let l = 0; l < model.nLayers; l++)
    for (const t of targets) {
      const [rows, inp] = siteShape(model, SITE_OF_TARGET[t]);
      for (const [ab, shape] of [
        ['A', [pc.r, inp]],
        ['B', [rows, pc.r]],
      ] as const) {
        const name = `layers.${l}.${t}.${ab}`;
        const data = found.get(name);
        if (!data)
          throw new EngineError(
            'BAD_FILE',
            `${PEFT_WEIGHTS_FILE} lacks ${peftKey(l, t, ab)}, although ${PEFT_CONFIG_FILE} lists ${HF_NAMES[TARGETS.indexOf(t)]}: the two files do not belong together, or the file is damaged.`,
          );
        const heads = ropeHeads(model, t);
        out[name] = {
          shape: [...shape],
          data:
            ab === 'B' && hf && heads !== null ? permuteRopeRows(data, heads, headSize(model), false) : data,
        };
      }
    }
  return {
    config: { rank: pc.r, alpha: pc.alpha, dropout: pc.dropout, targets },
    model: modelShape(model),
    tensors: out,
    base: pc.base,
  };
}
