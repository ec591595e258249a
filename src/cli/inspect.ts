/**
 * `d2g inspect FILE_OR_DIR [--json]`: what a model file holds, read from its header only — format,
 * LLaMA config, parameter count, tensor types with counts and bytes, tokenizer, GGUF's general.*
 * metadata, and whether dust2gold can load it. Formats: GGUF (v2/v3), an MLC / web-llm folder
 * (q4f16_1, q4f32_1), our safetensors model, a llama2.c checkpoint (.bin).
 *
 * Big files are read in ranges (files.ts fromFile): a GGUF's header, an MLC folder's two JSON files
 * and its shards' sizes. Our safetensors and llama2.c files (f32, small) are also read whole and
 * checked by the engine's readers when they are at most `wholeFileLimit` bytes (256 MiB); beyond
 * that only their header and size are checked.
 *
 * @example
 *   npm run d2g -- inspect llama-2-7b.Q4_K_M.gguf
 *   const { report, weights } = await inspectModel('public/models/stories260K.bin');
 */
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { EngineError, formatBytes } from '../engine/errors.ts';
import { readLlamaSafetensors } from '../engine/io/checkpoint.ts';
import { CharTokenizer, checkTokenizerVocab } from '../engine/io/chartok.ts';
import type { ByteSource } from '../engine/io/bytesource.ts';
import { readGgufHeader, type GgufArray, type GgufFile, type GgufKV } from '../engine/io/gguf.ts';
import {
  llamaConfigFromGguf,
  llamaTensorsFromGguf,
  metaArray,
  metaNumber,
  metaString,
} from '../engine/io/gguf-llama.ts';
import { LLAMA2C_HEADER_BYTES, llama2cLayout, parseLlama2c } from '../engine/io/llama2c.ts';
import { openMlc, MLC_CHAT_CONFIG, MLC_MANIFESTS, type MlcModel } from '../engine/io/mlc.ts';
import { DTYPE_BYTES, type Dtype } from '../engine/io/safetensors.ts';
import { headSize, paramCount, validateConfig, type LlamaConfig } from '../engine/model/config.ts';
import { weightLabel } from '../engine/model/llama.ts';
import { WEIGHT_NAMES, weightSizes } from '../engine/model/weights.ts';
import type { WeightType, WeightTypes } from '../engine/plan/types.ts';
import { fromFile, fsFolder, isDirectory } from './files.ts';

export type ModelFormat = 'gguf' | 'mlc' | 'safetensors' | 'llama2c';
export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };

/** Tensors of one stored type. */
export interface TypeCount {
  type: string;
  tensors: number;
  bytes: number;
}

export interface TokenizerSummary {
  /** 'llama (SentencePiece)', 'gpt2 (byte-level BPE)', 'char', 'tokenizer.json (Hugging Face)', … */
  model: string;
  vocabSize: number | null;
  bos: number | null;
  eos: number | null;
  unk: number | null;
  pad: number | null;
  /** Where it comes from: the file's metadata, or the tokenizer file(s) found. */
  source: string;
}

export interface ModelReport {
  /** File or folder name (no directories). */
  name: string;
  format: ModelFormat;
  /** One line: 'GGUF version 3, alignment 32, 38 metadata entries'. */
  formatDetail: string;
  version: number | string | null;
  /** Bytes on disk (a folder: its JSON files and shards). */
  bytes: number;
  config: LlamaConfig | null;
  /** Values in the weight tensors (GGUF, safetensors: counted from the tensors; else from the config). */
  parameters: number;
  tensors: number;
  tensorBytes: number;
  /** Largest first. */
  types: TypeCount[];
  /** null: none in the file (llama2.c), none found next to it. */
  tokenizer: TokenizerSummary | null;
  /** GGUF's general.* metadata (keys without the "general." prefix). */
  general: Record<string, JsonValue> | null;
  /** Other metadata worth showing: MLC's manifest metadata, a safetensors file's __metadata__. */
  metadata: Record<string, JsonValue> | null;
  /** null when dust2gold can load the model; else the reason (an EngineError's code and message). */
  problem: { code: string; message: string } | null;
}

export interface Inspected {
  report: ModelReport;
  /** The planner's weight types for this file (null when dust2gold cannot load it). */
  weights: WeightTypes | null;
}

export interface InspectOptions {
  /** Our safetensors and llama2.c files up to this size are read whole and checked. Default 256 MiB. */
  wholeFileLimit?: number;
}

export const WHOLE_FILE_LIMIT = 256 * 2 ** 20;

const fmt = (v: number): string => v.toLocaleString('en-US');

/** gguf-py's LlamaFileType names (general.file_type), 0..37; 4–6 and 33–35 are no longer written. */
const FILE_TYPES: readonly string[] = [
  'ALL_F32',
  'MOSTLY_F16',
  'MOSTLY_Q4_0',
  'MOSTLY_Q4_1',
  'MOSTLY_Q4_1_SOME_F16',
  'MOSTLY_Q4_2',
  'MOSTLY_Q4_3',
  'MOSTLY_Q8_0',
  'MOSTLY_Q5_0',
  'MOSTLY_Q5_1',
  'MOSTLY_Q2_K',
  'MOSTLY_Q3_K_S',
  'MOSTLY_Q3_K_M',
  'MOSTLY_Q3_K_L',
  'MOSTLY_Q4_K_S',
  'MOSTLY_Q4_K_M',
  'MOSTLY_Q5_K_S',
  'MOSTLY_Q5_K_M',
  'MOSTLY_Q6_K',
  'MOSTLY_IQ2_XXS',
  'MOSTLY_IQ2_XS',
  'MOSTLY_Q2_K_S',
  'MOSTLY_IQ3_XS',
  'MOSTLY_IQ3_XXS',
  'MOSTLY_IQ1_S',
  'MOSTLY_IQ4_NL',
  'MOSTLY_IQ3_S',
  'MOSTLY_IQ3_M',
  'MOSTLY_IQ2_S',
  'MOSTLY_IQ2_M',
  'MOSTLY_IQ4_XS',
  'MOSTLY_IQ1_M',
  'MOSTLY_BF16',
  'MOSTLY_Q4_0_4_4',
  'MOSTLY_Q4_0_4_8',
  'MOSTLY_Q4_0_8_8',
  'MOSTLY_TQ1_0',
  'MOSTLY_TQ2_0',
];

function problemOf(e: unknown): { code: string; message: string } {
  if (e instanceof EngineError) return { code: e.code, message: e.message };
  throw e;
}

function groupTypes(items: Iterable<{ type: string; bytes: number }>): TypeCount[] {
  const m = new Map<string, TypeCount>();
  for (const { type, bytes } of items) {
    const g = m.get(type) ?? { type, tensors: 0, bytes: 0 };
    g.tensors++;
    g.bytes += bytes;
    m.set(type, g);
  }
  return [...m.values()].sort((a, b) => b.bytes - a.bytes || a.type.localeCompare(b.type));
}

/** Types by planner tensor name → WeightTypes: the commonest matrix and norm types, the rest per tensor. */
export function weightTypesFromTensors(types: ReadonlyMap<string, WeightType>): WeightTypes {
  const isNorm = (n: string) => n === 'norm' || n.endsWith('_norm');
  const commonest = (norm: boolean): WeightType | undefined => {
    const count = new Map<WeightType, number>();
    for (const [n, t] of types) if (isNorm(n) === norm) count.set(t, (count.get(t) ?? 0) + 1);
    return [...count].sort((a, b) => b[1] - a[1])[0]?.[0];
  };
  const matrices = commonest(false) ?? 'f32';
  const norm = commonest(true) ?? 'f32';
  const tensors: Record<string, WeightType> = {};
  for (const [n, t] of types) if (t !== (isNorm(n) ? norm : matrices)) tensors[n] = t;
  return {
    matrices,
    ...(norm !== 'f32' ? { norm } : {}),
    ...(Object.keys(tensors).length > 0 ? { tensors } : {}),
  };
}

const GGML_TO_PLAN: Record<string, WeightType> = {
  F32: 'f32',
  F16: 'f16',
  Q8_0: 'q8_0',
  Q4_0: 'q4_0',
  Q4_K: 'q4_k',
  Q6_K: 'q6_k',
};

// ---------------------------------------------------------------------------------------------
// GGUF

function ggufValue(kv: GgufKV): JsonValue {
  const scalar = (v: number | bigint | boolean | string): JsonValue =>
    typeof v === 'bigint' ? (Number.isSafeInteger(Number(v)) ? Number(v) : v.toString()) : v;
  const array = (a: GgufArray): JsonValue =>
    a.items.length > 16
      ? `[${fmt(a.items.length)} × ${a.itemType}]`
      : (a.items as readonly (GgufArray | number | bigint | boolean | string)[]).map((x) =>
          typeof x === 'object' ? array(x) : scalar(x),
        );
  return kv.type === 'array' ? array(kv.value) : scalar(kv.value);
}

async function inspectGguf(src: ByteSource): Promise<Inspected> {
  const file: GgufFile = await readGgufHeader(src);
  const general: Record<string, JsonValue> = {};
  for (const [k, kv] of file.metadata) if (k.startsWith('general.')) general[k.slice(8)] = ggufValue(kv);
  let config: LlamaConfig | null = null;
  let problem: ModelReport['problem'] = null;
  let weights: WeightTypes | null = null;
  try {
    config = llamaConfigFromGguf(file);
    const types = new Map<string, WeightType>();
    for (const t of llamaTensorsFromGguf(file, config)) {
      types.set(weightLabel(t.weight, t.layer), GGML_TO_PLAN[t.info.typeName]!);
    }
    weights = weightTypesFromTensors(types);
  } catch (e) {
    problem = problemOf(e);
  }
  let tokenizer: TokenizerSummary | null = null;
  const tokModel = metaString(file, 'tokenizer.ggml.model');
  if (tokModel !== undefined) {
    const kind: Record<string, string> = { llama: 'SentencePiece', gpt2: 'byte-level BPE' };
    const id = (k: string) => metaNumber(file, `tokenizer.ggml.${k}_token_id`) ?? null;
    tokenizer = {
      model: kind[tokModel] ? `${tokModel} (${kind[tokModel]})` : tokModel,
      vocabSize: metaArray(file, 'tokenizer.ggml.tokens')?.items.length ?? null,
      bos: id('bos'),
      eos: id('eos'),
      unk: id('unknown'),
      pad: id('padding'),
      source: 'GGUF metadata tokenizer.ggml.*',
    };
  }
  const tensorBytes = file.tensors.reduce((a, t) => a + t.byteSize, 0);
  return {
    report: {
      name: file.name,
      format: 'gguf',
      formatDetail: `GGUF version ${file.version}, alignment ${file.alignment}, ${fmt(file.metadata.size)} metadata entries`,
      version: file.version,
      bytes: file.size,
      config,
      parameters: file.tensors.reduce((a, t) => a + t.nElements, 0),
      tensors: file.tensors.length,
      tensorBytes,
      types: groupTypes(file.tensors.map((t) => ({ type: t.typeName, bytes: t.byteSize }))),
      tokenizer,
      general,
      metadata: null,
      problem,
    },
    weights,
  };
}

// ---------------------------------------------------------------------------------------------
// MLC

async function inspectMlc(dir: string): Promise<Inspected> {
  const folder = fsFolder(dir);
  const model: MlcModel = await openMlc(folder);
  const records = model.manifest.records.flatMap((s) => s.records);
  const c = model.config;
  let bytes = model.manifest.records.reduce((a, s) => a + s.nbytes, 0);
  for (const f of [MLC_CHAT_CONFIG, model.manifestName]) bytes += (await folder.open(f))?.size ?? 0;
  const raw = model.chatConfig;
  const listed = Array.isArray(raw.tokenizer_files)
    ? raw.tokenizer_files.filter((f): f is string => typeof f === 'string')
    : [];
  const present: string[] = [];
  for (const f of new Set(['tokenizer.json', 'tokenizer.model', ...listed])) {
    if (!f.includes('..') && (await folder.open(f))) present.push(f);
  }
  const firstId = (v: unknown): number | null =>
    typeof v === 'number' ? v : Array.isArray(v) && typeof v[0] === 'number' ? v[0] : null;
  const tokModel = present.includes('tokenizer.json')
    ? 'tokenizer.json (Hugging Face)'
    : present.includes('tokenizer.model')
      ? 'tokenizer.model (SentencePiece)'
      : 'not downloaded';
  const tokenizer: TokenizerSummary = {
    model: tokModel,
    vocabSize: c.vocabSize,
    bos: firstId(raw.bos_token_id),
    eos: firstId(raw.eos_token_id),
    unk: null,
    pad: firstId(raw.pad_token_id),
    source: present.length > 0 ? present.join(', ') : `${MLC_CHAT_CONFIG}; no tokenizer file in the folder`,
  };
  const metadata: Record<string, JsonValue> = {};
  for (const [k, v] of Object.entries(model.manifest.metadata)) {
    if (v === null || ['number', 'string', 'boolean'].includes(typeof v)) metadata[k] = v as JsonValue;
  }
  return {
    report: {
      name: folder.name,
      format: 'mlc',
      formatDetail: `MLC LLM ${model.quantization} (web-llm), ${model.manifestName}, ${fmt(model.manifest.records.length)} shard${model.manifest.records.length === 1 ? '' : 's'}`,
      version: typeof raw.version === 'string' ? raw.version : null,
      bytes,
      config: c,
      parameters: paramCount(c),
      tensors: records.length,
      tensorBytes: records.reduce((a, r) => a + r.nbytes, 0),
      types: groupTypes(
        records.map((r) => ({
          type:
            r.dtype === 'float32' && r.format === 'f32-to-bf16' ? 'float32 (stored as bfloat16)' : r.dtype,
          bytes: r.nbytes,
        })),
      ),
      tokenizer,
      general: null,
      metadata,
      problem: null,
    },
    // q4f16_1 / q4f32_1 matrices repack exactly (f16 scales) or nearly (f32 scales) into q4_0
    // blocks, which is how dust2gold holds them on the GPU; norms are held in f32.
    weights: { matrices: 'q4_0' },
  };
}

// ---------------------------------------------------------------------------------------------
// Our safetensors model

interface StEntry {
  dtype: Dtype;
  elements: number;
  end: number;
}

/** The safetensors header only (u64 length + JSON): metadata and each tensor's dtype and size. */
async function safetensorsHeader(
  src: ByteSource,
): Promise<{ metadata: Record<string, string>; entries: StEntry[]; dataStart: number }> {
  const head = await src.read(0, 8);
  const v = new DataView(head.buffer, head.byteOffset, 8);
  const n = v.getUint32(0, true) + v.getUint32(4, true) * 2 ** 32;
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(await src.read(8, n))) as Record<string, unknown>;
  } catch (e) {
    if (e instanceof EngineError) throw e;
    throw new EngineError(
      'BAD_FILE',
      `${src.name}: the safetensors header is not valid JSON: the file is corrupt or not a safetensors file.`,
    );
  }
  const metadata: Record<string, string> = {};
  const entries: StEntry[] = [];
  for (const [name, raw] of Object.entries(header)) {
    const t = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    if (name === '__metadata__') {
      for (const [k, val] of Object.entries((raw ?? {}) as Record<string, unknown>))
        if (typeof val === 'string') metadata[k] = val;
      continue;
    }
    if (
      !t ||
      typeof t.dtype !== 'string' ||
      !(t.dtype in DTYPE_BYTES) ||
      !Array.isArray(t.shape) ||
      !Array.isArray(t.data_offsets)
    ) {
      throw new EngineError(
        'BAD_FILE',
        `${src.name}: tensor ${name} in the safetensors header has no valid dtype, shape or data_offsets: the file is corrupt.`,
      );
    }
    const elements = (t.shape as number[]).reduce((a, d) => a * d, 1);
    entries.push({ dtype: t.dtype as Dtype, elements, end: Number(t.data_offsets[1]) });
  }
  return { metadata, entries, dataStart: 8 + n };
}

async function inspectSafetensors(src: ByteSource, path: string, opts: InspectOptions): Promise<Inspected> {
  const { metadata, entries, dataStart } = await safetensorsHeader(src);
  if (metadata.format !== 'dust2gold-llama') {
    throw new EngineError(
      'BAD_MAGIC',
      `${src.name} is a safetensors file but not a dust2gold model (format "${metadata.format ?? 'none'}"): inspect reads dust2gold models, GGUF files, MLC folders and llama2.c checkpoints.`,
    );
  }
  let config: LlamaConfig;
  if (src.size <= (opts.wholeFileLimit ?? WHOLE_FILE_LIMIT)) {
    const all = await src.read(0, src.size);
    const buf = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) as ArrayBuffer;
    config = readLlamaSafetensors(buf, src.name).config; // every tensor checked against the config
  } else {
    try {
      config = JSON.parse(metadata.config ?? '') as LlamaConfig;
    } catch {
      throw new EngineError(
        'BAD_FILE',
        `${src.name}: the model configuration in the file's metadata is missing or not JSON — this is not a dust2gold file.`,
      );
    }
    validateConfig(config, 'BAD_FILE', src.name);
    const end = dataStart + Math.max(0, ...entries.map((e) => e.end));
    if (end > src.size) {
      throw new EngineError(
        'TRUNCATED_FILE',
        `${src.name} ends after ${fmt(src.size)} of ${fmt(end)} bytes: the file is incomplete — download it again.`,
      );
    }
  }
  let tokenizer: TokenizerSummary | null = null;
  let problem: ModelReport['problem'] = null;
  const tokName = `${src.name.replace(/\.safetensors$/, '')}.tokenizer.json`;
  const tokSrc = await fromFile(join(dirname(path), tokName)).catch(() => null);
  if (tokSrc) {
    try {
      const tok = CharTokenizer.fromJSON(
        JSON.parse(new TextDecoder().decode(await tokSrc.read(0, Math.min(tokSrc.size, 1 << 20)))),
      );
      checkTokenizerVocab(tok.vocabSize, config.vocabSize, tokName, src.name);
      tokenizer = {
        model: 'char',
        vocabSize: tok.vocabSize,
        bos: tok.bos,
        eos: tok.eos,
        unk: null,
        pad: tok.pad,
        source: tokName,
      };
    } catch (e) {
      problem =
        e instanceof SyntaxError
          ? {
              code: 'BAD_FILE',
              message: `${tokName} is not JSON: a character tokenizer file is {"type": "char", "chars": "..."}.`,
            }
          : problemOf(e);
    }
  }
  const meta: Record<string, JsonValue> = {};
  for (const [k, v] of Object.entries(metadata)) if (k !== 'config') meta[k] = v;
  return {
    report: {
      name: src.name,
      format: 'safetensors',
      formatDetail: 'dust2gold model (safetensors, config in __metadata__)',
      version: null,
      bytes: src.size,
      config,
      parameters: entries.reduce((a, e) => a + e.elements, 0),
      tensors: entries.length,
      tensorBytes: entries.reduce((a, e) => a + e.elements * DTYPE_BYTES[e.dtype], 0),
      types: groupTypes(entries.map((e) => ({ type: e.dtype, bytes: e.elements * DTYPE_BYTES[e.dtype] }))),
      tokenizer,
      general: null,
      metadata: meta,
      problem,
    },
    weights: { matrices: 'f32' },
  };
}

// ---------------------------------------------------------------------------------------------
// llama2.c

const LLAMA2C_HEADER = LLAMA2C_HEADER_BYTES;

async function inspectLlama2c(src: ByteSource, opts: InspectOptions): Promise<Inspected> {
  let config: LlamaConfig;
  if (src.size <= (opts.wholeFileLimit ?? WHOLE_FILE_LIMIT)) {
    const all = await src.read(0, src.size);
    config = parseLlama2c(
      all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) as ArrayBuffer,
      src.name,
    ).config;
  } else {
    if (src.size < LLAMA2C_HEADER) {
      throw new EngineError(
        'TRUNCATED_FILE',
        `${src.name} is ${src.size} bytes, shorter than the ${LLAMA2C_HEADER}-byte llama2.c header: the file is incomplete — download it again.`,
      );
    }
    config = llama2cLayout(await src.read(0, LLAMA2C_HEADER), src.size, src.name).config;
  }
  const { freqCis } = llama2cLayout(await src.read(0, LLAMA2C_HEADER), src.size, src.name);
  const sizes = weightSizes(config);
  const arrays = WEIGHT_NAMES.filter((n) => n !== 'wcls' || !config.sharedClassifier);
  const types: TypeCount[] = [
    { type: 'F32', tensors: arrays.length, bytes: arrays.reduce((a, n) => a + 4 * sizes[n], 0) },
  ];
  if (freqCis) {
    types.push({ type: 'F32 freq_cis (unused)', tensors: 2, bytes: 4 * config.maxSeqLen * headSize(config) });
  }
  return {
    report: {
      name: src.name,
      format: 'llama2c',
      formatDetail:
        'llama2.c checkpoint (version 0, what run.c reads); rope theta and norm eps fixed by the format',
      version: 0,
      bytes: src.size,
      config,
      parameters: paramCount(config),
      tensors: types.reduce((a, t) => a + t.tensors, 0),
      tensorBytes: types.reduce((a, t) => a + t.bytes, 0),
      types,
      tokenizer: null,
      general: null,
      metadata: null,
      problem: null,
    },
    weights: { matrices: 'f32' },
  };
}

// ---------------------------------------------------------------------------------------------

const GGUF_MAGIC = [0x47, 0x47, 0x55, 0x46]; // "GGUF"
const OLD_GGML_MAGICS = [0x67676d6c, 0x67676d66, 0x67676a74]; // GGML, GGMF, GGJT (u32, little-endian)

/**
 * Reads a model's header (and, for small f32 files, the whole file) and reports what it holds.
 * A directory, or a path to an MLC folder's mlc-chat-config.json / tensor-cache.json, is an MLC
 * folder. Throws EngineError for files it cannot read (BAD_MAGIC, BAD_FILE, TRUNCATED_FILE, …).
 */
export async function inspectModel(path: string, opts: InspectOptions = {}): Promise<Inspected> {
  const base = path.split(/[\\/]/).pop() ?? path;
  if (await isDirectory(path)) return inspectMlc(path);
  if (base === MLC_CHAT_CONFIG || (MLC_MANIFESTS as readonly string[]).includes(base))
    return inspectMlc(dirname(path));
  const src = await fromFile(path);
  const head = await src.read(0, Math.min(src.size, 9));
  if (head.length >= 4 && GGUF_MAGIC.every((b, i) => head[i] === b)) return inspectGguf(src);
  // llama.cpp's formats before GGUF: readGgufHeader names them
  const magic = head.length >= 4 ? new DataView(head.buffer, head.byteOffset, 4).getUint32(0, true) : 0;
  if (OLD_GGML_MAGICS.includes(magic)) return inspectGguf(src);
  if (head.length === 9 && head[8] === 0x7b) {
    const v = new DataView(head.buffer, head.byteOffset, 8);
    const n = v.getUint32(0, true) + v.getUint32(4, true) * 2 ** 32;
    if (n > 1 && n <= src.size - 8) return inspectSafetensors(src, path, opts);
  }
  return inspectLlama2c(src, opts);
}

// ---------------------------------------------------------------------------------------------
// Text

function compact(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} K`;
  return String(n);
}

const num = (v: number): string => (v !== 0 && Math.abs(v) < 1e-3 ? v.toExponential() : fmt(v));

/** 'dim 64, hidden 172, layers 5, heads 8, kv heads 4, vocab 512, context 512, rope theta 10,000, …' */
export function describeConfig(c: LlamaConfig): string {
  return [
    `dim ${fmt(c.dim)}`,
    `hidden ${fmt(c.hiddenDim)}`,
    `layers ${c.nLayers}`,
    `heads ${c.nHeads}`,
    `kv heads ${c.nKvHeads}`,
    `vocab ${fmt(c.vocabSize)}`,
    `context ${fmt(c.maxSeqLen)}`,
    `rope theta ${num(c.ropeTheta)}`,
    `norm eps ${num(c.normEps)}`,
    c.sharedClassifier ? 'classifier shared with the embedding' : 'separate classifier',
  ].join(', ');
}

function jsonText(v: JsonValue): string {
  if (typeof v === 'number') return Number.isInteger(v) ? fmt(v) : String(+v.toPrecision(4));
  return typeof v === 'string' || Array.isArray(v) ? JSON.stringify(v) : String(v);
}

/** The report as the text `d2g inspect` prints. */
export function formatReport(r: ModelReport): string {
  const out = [
    `${r.name}: ${r.formatDetail}`,
    `  size         ${fmt(r.bytes)} bytes (${formatBytes(r.bytes)})`,
  ];
  if (r.config) out.push(`  config       ${describeConfig(r.config)}`);
  out.push(`  parameters   ${fmt(r.parameters)} (${compact(r.parameters)})`);
  out.push(`  tensors      ${fmt(r.tensors)}, ${formatBytes(r.tensorBytes)}`);
  const w = Math.max(...r.types.map((t) => t.type.length));
  const tw = Math.max(...r.types.map((t) => fmt(t.tensors).length));
  for (const t of r.types) {
    out.push(
      `    ${t.type.padEnd(w)}  ${fmt(t.tensors).padStart(tw)} tensor${t.tensors === 1 ? ' ' : 's'}  ${formatBytes(t.bytes).padStart(10)}`,
    );
  }
  const tk = r.tokenizer;
  if (tk) {
    const ids = (['bos', 'eos', 'unk', 'pad'] as const)
      .filter((k) => tk[k] !== null)
      .map((k) => `${k} ${tk[k]}`);
    out.push(
      `  tokenizer    ${[tk.model, tk.vocabSize !== null ? `${fmt(tk.vocabSize)} tokens` : null, ...ids].filter(Boolean).join(', ')} (from ${tk.source})`,
    );
  } else {
    out.push(
      r.format === 'llama2c'
        ? '  tokenizer    not in the file: llama2.c keeps it in a separate .bin (generate --tokenizer)'
        : '  tokenizer    none found',
    );
  }
  if (r.general && Object.keys(r.general).length > 0) {
    out.push('  general');
    const kw = Math.max(...Object.keys(r.general).map((k) => k.length));
    for (const [k, v] of Object.entries(r.general)) {
      const named = k === 'file_type' && typeof v === 'number' && FILE_TYPES[v] ? ` (${FILE_TYPES[v]})` : '';
      out.push(`    ${k.padEnd(kw)}  ${jsonText(v)}${named}`);
    }
  }
  if (r.metadata && Object.keys(r.metadata).length > 0) {
    out.push(
      `  metadata     ${Object.entries(r.metadata)
        .map(([k, v]) => `${k} ${jsonText(v)}`)
        .join(', ')}`,
    );
  }
  out.push(
    r.problem
      ? `  dust2gold    cannot load it (${r.problem.code}): ${r.problem.message}`
      : '  dust2gold    can load it',
  );
  return out.join('\n');
}

export async function inspectCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { json: { type: 'boolean', default: false } },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length !== 1) {
    throw new EngineError(
      'BAD_ARGUMENT',
      'inspect needs one model: a .gguf file, an MLC folder, a dust2gold .safetensors model or a llama2.c .bin',
    );
  }
  const { report } = await inspectModel(positionals[0]!);
  process.stdout.write(values.json ? JSON.stringify(report, null, 2) + '\n' : formatReport(report) + '\n');
  return 0;
}
