/**
 * Adapter sets as zips of PEFT folders (the Models view's export and import).
 *
 * An adapter set (src/method/stages/files.ts) may hold more than one LoRA plus parts PEFT has no
 * name for: `exportAdapterSet` writes a single-LoRA set as one PEFT folder at the top of the zip
 * (+ result.json), and a NAT / ranker set as one PEFT folder per LoRA (lora/, neg/, rank/) with
 * nat.safetensors / head.safetensors / result.json in our format beside them, plus a README.txt.
 * `importAdapterFiles` reads either layout back, or any single PEFT LoRA for a LLaMA model. The
 * PEFT conversion itself (RoPE row order, names, config) is src/method/peft.ts.
 */
import { strToU8, unzipSync, zipSync } from 'fflate';
import { EngineError } from '../engine/errors.ts';
import { readLoraSafetensors, writeLoraSafetensors } from '../engine/io/checkpoint.ts';
import type { LlamaConfig } from '../engine/model/config.ts';
import {
  loraToPeft,
  PEFT_CONFIG_FILE,
  PEFT_WEIGHTS_FILE,
  bytesOf,
  peftToLora,
  type PeftOptions,
} from './peft.ts';
import { readStageFiles } from './stages/files.ts';

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
