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
 * An adapter set (src/method/stages/files.ts) may hold more than one LoRA plus parts PEFT has no
 * name for: `exportAdapterSet` writes a single-LoRA set as one PEFT folder at the top of the zip
 * (+ result.json), and a NAT / ranker set as one PEFT folder per LoRA (lora/, neg/, rank/) with
 * nat.safetensors / head.safetensors / result.json in our format beside them, plus a README.txt.
 * `importAdapterFiles` reads either layout back, or any single PEFT LoRA for a LLaMA model.
 *
 * @example
 *   const peft = loraToPeft(state, config, { baseModel: 'arith-student' });
 *   const back = peftToLora(peft['adapter_config.json'], peft['adapter_model.safetensors'], config);
 *   // back equals state, tensor for tensor
 */
import { strToU8, unzipSync, zipSync } from 'fflate';
import { EngineError } from '../engine/errors.ts';
import { readLoraSafetensors, writeLoraSafetensors } from '../engine/io/checkpoint.ts';
import { readSafetensors, toFloat32, writeSafetensors } from '../engine/io/safetensors.ts';
import { headSize, kvDim, type LlamaConfig } from '../engine/model/config.ts';
import { SITE_OF_TARGET, siteShape, type LoraTarget } from '../engine/model/llama.ts';
import type { LoraState } from '../engine/model/lora.ts';
import { readStageFiles } from './stages/files.ts';

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

/**
 * Row permutation between our RoPE layout and transformers' for a (NH·HS, cols) matrix:
 * toHf: out[h·HS + j·HS/2 + i] = in[h·HS + 2i + j]; otherwise the inverse.
 */
export function permuteRopeRows(m: Float32Array, nHeads: number, hs: number, toHf: boolean): Float32Array {
  const cols = m.length / (nHeads * hs);
  const out = new Float32Array(m.length);
  for (let h = 0; h < nHeads; h++)
    for (let i = 0; i < hs / 2; i++)
      for (let j = 0; j < 2; j++) {
        const ours = h * hs + 2 * i + j;
        const hf = h * hs + j * (hs / 2) + i;
        const [from, to] = toHf ? [ours, hf] : [hf, ours];
        out.set(m.subarray(from * cols, (from + 1) * cols), to * cols);
      }
  return out;
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

function bytesOf(b: ArrayBuffer | Uint8Array): ArrayBuffer {
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

/* ------------------------------------------------------------------ adapter sets and zips */

/** Our LoRA files in a set, and the PEFT folder each becomes when the set has several. */
const LORA_FILES = ['lora', 'neg', 'rank'] as const;

export const EXPORT_README = `This zip was exported by dust2gold (Turning Dust into Gold, Li et al., AAAI 2024).

Each LoRA is a Hugging Face PEFT folder (adapter_config.json + adapter_model.safetensors) for a
LlamaForCausalLM whose q_proj / k_proj rows are in transformers' layout (rotate_half RoPE), as
every Hugging Face LLaMA checkpoint is. In PyTorch:

    from peft import PeftModel
    model = PeftModel.from_pretrained(base_model, "<folder>")

A set with one LoRA has its PEFT files at the top of the zip. A set with several (NAT: lora/ =
positive LoRA, neg/ = negative LoRA; ranker: rank/) has one folder per LoRA; the parts PEFT has
no name for stay in dust2gold's own format (safetensors with the configuration in the metadata):
nat.safetensors (NAT's integration unit), head.safetensors (the ranker's head). result.json is
the training record. dust2gold imports this zip back as it is.
`;

/** A set's files (stageFiles layout) → the files of the export zip, by path. */
export function exportAdapterSet(
  files: Record<string, ArrayBuffer>,
  model: LlamaConfig,
  opts: PeftOptions = {},
): Record<string, Uint8Array> {
  const loras = LORA_FILES.filter((n) => files[`${n}.safetensors`]);
  if (loras.length === 0)
    throw new EngineError(
      'BAD_ARGUMENT',
      'This adapter set holds no LoRA, so there is nothing to export as PEFT.',
    );
  const out: Record<string, Uint8Array> = {};
  const single = loras.length === 1 && loras[0] === 'lora';
  for (const n of loras) {
    const state = readLoraSafetensors(files[`${n}.safetensors`]!, `${n}.safetensors`);
    const peft = loraToPeft(state, model, opts);
    const dir = single ? '' : `${n}/`;
    out[dir + PEFT_CONFIG_FILE] = peft[PEFT_CONFIG_FILE];
    out[dir + PEFT_WEIGHTS_FILE] = peft[PEFT_WEIGHTS_FILE];
  }
  for (const [name, b] of Object.entries(files))
    if (!LORA_FILES.some((n) => name === `${n}.safetensors`)) out[name] = new Uint8Array(b);
  out['README.txt'] = strToU8(EXPORT_README);
  return out;
}

/** Files by path → one zip (stored with deflate; fixed dates, so the same set gives the same bytes). */
export function zipFiles(files: Record<string, Uint8Array>): Uint8Array {
  return zipSync(files, { level: 6, mtime: new Date(2024, 0, 1) });
}

const MAX_UNZIPPED = 1 << 30;

/** A zip → its files by path (folders, macOS `__MACOSX/` and dot-files left out). */
export function unzipFiles(zip: Uint8Array, name = 'the zip'): Record<string, Uint8Array> {
  let total = 0;
  try {
    const all = unzipSync(zip, {
      filter: (f) => {
        total += f.originalSize;
        if (total > MAX_UNZIPPED) throw new Error('more than 1 GiB unpacked');
        return !f.name.endsWith('/') && !f.name.startsWith('__MACOSX/');
      },
    });
    const out: Record<string, Uint8Array> = {};
    for (const [p, b] of Object.entries(all)) if (!/(^|\/)\./.test(p)) out[p.replace(/^\.\//, '')] = b;
    return out;
  } catch (cause) {
    throw new EngineError(
      'BAD_FILE',
      `${name} could not be unpacked (${cause instanceof Error ? cause.message : String(cause)}): it is not a zip file, or it is damaged. Export it again, or drop adapter_config.json and adapter_model.safetensors themselves.`,
      { cause },
    );
  }
}

export function isZip(b: Uint8Array): boolean {
  return b.length >= 4 && b[0] === 0x50 && b[1] === 0x4b && b[2] === 0x03 && b[3] === 0x04;
}

export interface ImportedSet {
  /** The set's files in our layout (stageFiles), ready for saveAdapterSet. */
  files: Record<string, Uint8Array>;
  stage: string;
  /** base_model_name_or_path of the (first) PEFT config, if any. */
  base: string | null;
  /** The PEFT folders read ('' = top level). */
  folders: string[];
}

/**
 * Files by path (a zip's content, or loose files dropped together) → an adapter set in our layout.
 * Reads our export layout (one PEFT folder at the top, or lora/ neg/ rank/ folders with our
 * other files) or any single PEFT LoRA folder. `stage` overrides result.json's (default 'kd').
 */
export function importAdapterFiles(
  files: Record<string, Uint8Array>,
  model: LlamaConfig,
  opts: PeftOptions & { stage?: string } = {},
): ImportedSet {
  const paths = Object.keys(files);
  const dirOf = (p: string) => p.slice(0, p.lastIndexOf('/') + 1);
  const configs = paths.filter((p) => p.split('/').pop() === PEFT_CONFIG_FILE);
  if (configs.length === 0) {
    if (paths.some((p) => p.endsWith(PEFT_WEIGHTS_FILE)))
      throw new EngineError(
        'BAD_FILE',
        `${PEFT_CONFIG_FILE} is missing: PEFT keeps r, lora_alpha and the target modules there. Drop or pick both files together (${PEFT_CONFIG_FILE} and ${PEFT_WEIGHTS_FILE}), or the zip of the folder.`,
      );
    if (paths.some((p) => p.endsWith('adapter_model.bin')))
      throw new EngineError(
        'BAD_FILE',
        'adapter_model.bin is a PyTorch pickle, which a browser cannot read safely. Save the adapter with safe_serialization=True (adapter_model.safetensors) and import that.',
      );
    throw new EngineError(
      'BAD_FILE',
      `${paths.length === 1 ? `"${paths[0]}" is` : 'These files are'} not a PEFT adapter. Import ${PEFT_CONFIG_FILE} + ${PEFT_WEIGHTS_FILE} (both together), or a zip holding them.`,
    );
  }
  const dirs = configs.map(dirOf);
  for (const d of dirs)
    if (!files[d + PEFT_WEIGHTS_FILE])
      throw new EngineError(
        'BAD_FILE',
        `${PEFT_WEIGHTS_FILE} is missing${d ? ` in ${d}` : ''}: the weights are in that file, next to ${PEFT_CONFIG_FILE}. Drop or pick both files together.`,
      );
  // our multi-LoRA layout: lora/, neg/, rank/ folders, our other files beside them
  const ours = dirs.every((d) => (LORA_FILES as readonly string[]).includes(d.slice(0, -1)));
  let root: string;
  const roles: { dir: string; file: string }[] = [];
  if (ours && !(dirs.length === 1 && dirs[0] === 'lora/')) {
    root = '';
    for (const d of dirs) roles.push({ dir: d, file: `${d.slice(0, -1)}.safetensors` });
  } else if (dirs.length === 1) {
    root = dirs[0]!;
    roles.push({ dir: root, file: 'lora.safetensors' });
  } else
    throw new EngineError(
      'BAD_ARGUMENT',
      `This zip holds ${dirs.length} PEFT adapters (${dirs.map((d) => d || 'top level').join(', ')}). Import one at a time: zip or drop a single adapter folder.`,
    );
  const out: Record<string, Uint8Array> = {};
  let base: string | null = null;
  for (const { dir, file } of roles) {
    const state = peftToLora(files[dir + PEFT_CONFIG_FILE]!, files[dir + PEFT_WEIGHTS_FILE]!, model, opts);
    base ??= state.base;
    const { base: _, ...lora } = state;
    out[file] = writeLoraSafetensors(lora);
  }
  for (const extra of ['nat.safetensors', 'head.safetensors', 'result.json'])
    if (files[root + extra]) out[extra] = files[root + extra]!;
  // everything must read back as a stage directory (catches a damaged nat / head / result.json)
  const ab: Record<string, ArrayBuffer> = {};
  for (const [k, v] of Object.entries(out)) ab[k] = bytesOf(v);
  const read = readStageFiles(ab);
  const nat = read.adapters.nat?.model;
  if (nat && (nat.dim !== model.dim || nat.hiddenDim !== model.hiddenDim || nat.nLayers !== model.nLayers))
    throw new EngineError(
      'SHAPE_MISMATCH',
      `nat.safetensors was made for another model (width ${nat.dim}, ${nat.nLayers} layers; the model in use has ${model.dim}, ${model.nLayers}). Choose the model it was made for above, then import again.`,
    );
  const head = read.adapters.head;
  if (head && head.dim !== model.dim)
    throw new EngineError(
      'SHAPE_MISMATCH',
      `head.safetensors was made for a model of width ${head.dim}; the model in use has ${model.dim}. Choose the model it was made for above, then import again.`,
    );
  return { files: out, stage: opts.stage ?? read.stage ?? 'kd', base, folders: roles.map((r) => r.dir) };
}
