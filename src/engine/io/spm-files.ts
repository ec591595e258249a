/**
 * LLaMA-2-style tokenizers from the files that ship beside the weights (web-llm's MLC folders,
 * Hugging Face repositories): `tokenizer.model` (SentencePiece's ModelProto, protobuf) and
 * `tokenizer.json` (Hugging Face tokenizers, as transformers' LlamaConverter writes it). Both become
 * the `SpmVocab` that spm.ts also builds from GGUF metadata, and then an `SpmTokenizer`, which
 * encodes and decodes exactly as SentencePiece does. See the "Tokenizers" section of docs/mlc.md.
 * This file reads tokenizer.model; spm-json.ts reads tokenizer.json.
 *
 * Facts from (read, no code copied): sentencepiece's src/sentencepiece_model.proto (field numbers,
 * defaults; checked against Debian's python3-sentencepiece 0.1.97 `sentencepiece_model_pb2.py`),
 * the protobuf wire format (varints, length-delimited fields, little-endian fixed32/fixed64),
 * transformers' src/transformers/convert_slow_tokenizer.py (LlamaConverter, SpmConverter,
 * generate_merges), and the JSON layout of Hugging Face tokenizers (model BPE, normalizers
 * Prepend/Replace, pre-tokenizer Metaspace, decoders, TemplateProcessing).
 *
 * tokenizer.model: pieces (piece, score, type) are the vocabulary as it is; trainer_spec gives the
 * model type (BPE only), the special ids (unk/bos/eos/pad, -1 = none) and byte_fallback;
 * normalizer_spec gives add_dummy_prefix. Settings an SpmTokenizer cannot honour are refused by name
 * (a precompiled normalization rule such as nmt_nfkc, remove_extra_whitespaces, escape_whitespaces
 * false, treat_whitespace_as_suffix).
 *
 * @example
 *   const tok = spmTokenizerFromModelProto(new Uint8Array(await file.arrayBuffer()), 'tokenizer.model');
 *   tok.encode('Hello world', tok.addBos, tok.addEos); // [1, 15043, 3186] for LLaMA 2
 */
import { EngineError } from '../errors.ts';
import { checkTokenizerVocab } from './chartok.ts';
import { SPM_TOKEN_TYPE, SpmTokenizer, type SpmVocab } from './spm.ts';

type MutableVocab = { -readonly [K in keyof SpmVocab]: SpmVocab[K] };

export const META = '\u2581';
export const fmt = (v: number) => v.toLocaleString('en-US');
export const bad = (name: string, msg: string) => new EngineError('BAD_FILE', `${name}: ${msg}`);

// ---------------------------------------------------------------------------------------------
// tokenizer.model: a SentencePiece ModelProto

/** sentencepiece_model.proto: TrainerSpec.ModelType. */
export const SPM_MODEL_TYPE = { unigram: 1, bpe: 2, word: 3, char: 4 } as const;
const MODEL_TYPE_NAMES: Record<number, string> = {
  1: 'a unigram model (as in T5, ALBERT, XLNet)',
  3: 'a word model (model_type WORD)',
  4: 'a character model (model_type CHAR)',
};

/** What readSpmModelProto takes out of a tokenizer.model (proto2 defaults where a field is absent). */
export interface SpmModelProto {
  readonly pieces: readonly { readonly piece: string; readonly score: number; readonly type: number }[];
  readonly trainer: {
    /** 1 unigram (the default), 2 BPE, 3 word, 4 char. */
    readonly modelType: number;
    readonly vocabSize: number;
    readonly byteFallback: boolean;
    readonly treatWhitespaceAsSuffix: boolean;
    /** -1 = none. Defaults 0, 1, 2, -1. */
    readonly unkId: number;
    readonly bosId: number;
    readonly eosId: number;
    readonly padId: number;
    readonly unkPiece: string;
    readonly bosPiece: string;
    readonly eosPiece: string;
    readonly padPiece: string;
    /** What decode prints for the unknown token (default " ⁇ "). */
    readonly unkSurface: string;
  };
  readonly normalizer: {
    /** The rule's name ("identity" for LLaMA, "nmt_nfkc" by default when training). */
    readonly name: string;
    /** Bytes of the compiled rule; 0 = no normalization. */
    readonly precompiledCharsmapBytes: number;
    readonly addDummyPrefix: boolean;
    readonly removeExtraWhitespaces: boolean;
    readonly escapeWhitespaces: boolean;
  };
}

// field numbers (sentencepiece_model.proto)
const F_PIECES = 1;
const F_TRAINER = 2;
const F_NORMALIZER = 3;
const F_PIECE = { piece: 1, score: 2, type: 3 } as const;
const F_TRAINER_SPEC = {
  modelType: 3,
  vocabSize: 4,
  treatWhitespaceAsSuffix: 24,
  byteFallback: 35,
  unkId: 40,
  bosId: 41,
  eosId: 42,
  padId: 43,
  unkSurface: 44,
  unkPiece: 45,
  bosPiece: 46,
  eosPiece: 47,
  padPiece: 48,
} as const;
const F_NORMALIZER_SPEC = {
  name: 1,
  precompiledCharsmap: 2,
  addDummyPrefix: 3,
  removeExtraWhitespaces: 4,
  escapeWhitespaces: 5,
} as const;

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;
const WIRE_NAMES = ['varint', '64-bit', 'length-delimited', 'group start', 'group end', '32-bit'];

/** One field of a protobuf message: its number, wire type and where its value is. */
interface PbField {
  readonly num: number;
  readonly wire: number;
  /** Offset of the field's key in the file (for messages). */
  readonly at: number;
  /** Varint value, low and high 32 bits (wire type 0). */
  readonly lo: number;
  readonly hi: number;
  /** Payload [start, end) for length-delimited and fixed-size fields. */
  readonly start: number;
  readonly end: number;
}

export const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** Reads protobuf fields of one message, [start, end) of the file. Every read is bounds-checked. */
class PbReader {
  private pos: number;
  constructor(
    private readonly b: Uint8Array,
    start: number,
    private readonly end: number,
    private readonly name: string,
    /** What is being read, for messages ("the ModelProto", "piece 12"). */
    private readonly what: string,
  ) {
    this.pos = start;
  }

  private cut(at: number, need: string): EngineError {
    const whole = this.b.length;
    return bad(
      this.name,
      `${this.what} ends in the middle of ${need} (byte ${fmt(at)} of ${fmt(whole)}): the file is cut short or damaged. Download it again.`,
    );
  }

  private varint(): { lo: number; hi: number } {
    const start = this.pos;
    let lo = 0;
    let hi = 0;
    for (let k = 0; k < 10; k++) {
      if (this.pos >= this.end) throw this.cut(start, 'a number');
      const c = this.b[this.pos++]!;
      const v = c & 0x7f;
      if (k < 4) lo |= v << (7 * k);
      else if (k === 4) {
        lo |= v << 28;
        hi |= v >>> 4;
      } else hi |= v << (7 * k - 32);
      if (c < 0x80) return { lo: lo >>> 0, hi: hi >>> 0 };
    }
    throw bad(
      this.name,
      `${this.what} has a number longer than 10 bytes at byte ${fmt(start)}: this is not a SentencePiece tokenizer.model, or the file is damaged.`,
    );
  }

  next(): PbField | null {
    if (this.pos >= this.end) return null;
    const at = this.pos;
    const key = this.varint();
    const num = key.hi !== 0 ? -1 : key.lo >>> 3;
    const wire = key.lo & 7;
    if (num <= 0 || wire === 3 || wire === 4 || wire > 5) {
      throw bad(
        this.name,
        `${this.what} has an impossible field (number ${num <= 0 ? 0 : num}, ${WIRE_NAMES[wire] ?? `wire type ${wire}`}) at byte ${fmt(at)}: this is not a SentencePiece tokenizer.model${hint(this.b)}, or the file is damaged.`,
      );
    }
    let lo = 0;
    let hi = 0;
    let start = this.pos;
    let size = 0;
    if (wire === WIRE_VARINT) {
      ({ lo, hi } = this.varint());
      start = this.pos;
    } else if (wire === WIRE_LEN) {
      const n = this.varint();
      start = this.pos;
      if (n.hi !== 0 || n.lo > this.end - start) throw this.cut(at, `field ${num} (${fmt(n.lo)} bytes long)`);
      size = n.lo;
    } else size = wire === WIRE_I64 ? 8 : 4;
    if (size > this.end - start) throw this.cut(at, `field ${num}`);
    this.pos = start + size;
    return { num, wire, at, lo, hi, start, end: start + size };
  }

  /** Checks a known field's wire type. */
  expect(f: PbField, wire: number, field: string): void {
    if (f.wire !== wire) {
      throw bad(
        this.name,
        `${this.what}: ${field} (field ${f.num}) is stored as ${WIRE_NAMES[f.wire]}, not ${WIRE_NAMES[wire]}: this is not a SentencePiece tokenizer.model${hint(this.b)}, or the file is damaged.`,
      );
    }
  }

  str(f: PbField, field: string): string {
    this.expect(f, WIRE_LEN, field);
    try {
      return UTF8.decode(this.b.subarray(f.start, f.end));
    } catch {
      throw bad(
        this.name,
        `${this.what}: ${field} at byte ${fmt(f.at)} is not valid UTF-8 text: the file is damaged.`,
      );
    }
  }

  int32(f: PbField, field: string): number {
    this.expect(f, WIRE_VARINT, field);
    return f.lo | 0;
  }

  bool(f: PbField, field: string): boolean {
    this.expect(f, WIRE_VARINT, field);
    return (f.lo | f.hi) !== 0;
  }

  float(f: PbField, field: string): number {
    this.expect(f, WIRE_I32, field);
    return new DataView(this.b.buffer, this.b.byteOffset + f.start, 4).getFloat32(0, true);
  }

  sub(f: PbField, field: string, what: string): PbReader {
    this.expect(f, WIRE_LEN, field);
    return new PbReader(this.b, f.start, f.end, this.name, what);
  }
}

/** A guess at what a file that is not a ModelProto is, for the message. */
function hint(b: Uint8Array): string {
  const head = new TextDecoder().decode(b.subarray(0, 8)).trimStart();
  if (head.startsWith('{')) return ' (it looks like JSON: is it tokenizer.json?)';
  if (head.startsWith('GGUF')) return ' (it is a GGUF file)';
  return '';
}

/**
 * Decodes a tokenizer.model (SentencePiece's ModelProto). Unknown fields are skipped; absent ones
 * take proto2's defaults. Throws BAD_FILE for a file that is cut short, not a ModelProto, or has no
 * pieces. Checks nothing about the model's settings (spmVocabFromModelProto does).
 */
export function readSpmModelProto(bytes: Uint8Array, name = 'tokenizer.model'): SpmModelProto {
  const pieces: { piece: string; score: number; type: number }[] = [];
  const trainer: { -readonly [K in keyof SpmModelProto['trainer']]: SpmModelProto['trainer'][K] } = {
    modelType: SPM_MODEL_TYPE.unigram,
    vocabSize: 8000,
    byteFallback: false,
    treatWhitespaceAsSuffix: false,
    unkId: 0,
    bosId: 1,
    eosId: 2,
    padId: -1,
    unkPiece: '<unk>',
    bosPiece: '<s>',
    eosPiece: '</s>',
    padPiece: '<pad>',
    unkSurface: ' \u2047 ',
  };
  const normalizer: {
    -readonly [K in keyof SpmModelProto['normalizer']]: SpmModelProto['normalizer'][K];
  } = {
    name: '',
    precompiledCharsmapBytes: 0,
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    escapeWhitespaces: true,
  };
  const top = new PbReader(bytes, 0, bytes.length, name, 'the ModelProto');
  let hasTrainer = false;
  let hasNormalizer = false;
  for (let f = top.next(); f; f = top.next()) {
    if (f.num === F_PIECES) {
      const r = top.sub(f, 'a piece', `piece ${pieces.length}`);
      const p = { piece: '', score: 0, type: SPM_TOKEN_TYPE.normal as number };
      for (let g = r.next(); g; g = r.next()) {
        if (g.num === F_PIECE.piece) p.piece = r.str(g, 'its text');
        else if (g.num === F_PIECE.score) p.score = r.float(g, 'its score');
        else if (g.num === F_PIECE.type) p.type = r.int32(g, 'its type');
      }
      pieces.push(p);
    } else if (f.num === F_TRAINER) {
      hasTrainer = true;
      const r = top.sub(f, 'trainer_spec', 'trainer_spec');
      for (let g = r.next(); g; g = r.next()) {
        const T = F_TRAINER_SPEC;
        if (g.num === T.modelType) trainer.modelType = r.int32(g, 'model_type');
        else if (g.num === T.vocabSize) trainer.vocabSize = r.int32(g, 'vocab_size');
        else if (g.num === T.byteFallback) trainer.byteFallback = r.bool(g, 'byte_fallback');
        else if (g.num === T.treatWhitespaceAsSuffix) {
          trainer.treatWhitespaceAsSuffix = r.bool(g, 'treat_whitespace_as_suffix');
        } else if (g.num === T.unkId) trainer.unkId = r.int32(g, 'unk_id');
        else if (g.num === T.bosId) trainer.bosId = r.int32(g, 'bos_id');
        else if (g.num === T.eosId) trainer.eosId = r.int32(g, 'eos_id');
        else if (g.num === T.padId) trainer.padId = r.int32(g, 'pad_id');
        else if (g.num === T.unkSurface) trainer.unkSurface = r.str(g, 'unk_surface');
        else if (g.num === T.unkPiece) trainer.unkPiece = r.str(g, 'unk_piece');
        else if (g.num === T.bosPiece) trainer.bosPiece = r.str(g, 'bos_piece');
        else if (g.num === T.eosPiece) trainer.eosPiece = r.str(g, 'eos_piece');
        else if (g.num === T.padPiece) trainer.padPiece = r.str(g, 'pad_piece');
      }
    } else if (f.num === F_NORMALIZER) {
      hasNormalizer = true;
      const r = top.sub(f, 'normalizer_spec', 'normalizer_spec');
      for (let g = r.next(); g; g = r.next()) {
        const N = F_NORMALIZER_SPEC;
        if (g.num === N.name) normalizer.name = r.str(g, 'name');
        else if (g.num === N.precompiledCharsmap) {
          r.expect(g, WIRE_LEN, 'precompiled_charsmap');
          normalizer.precompiledCharsmapBytes = g.end - g.start;
        } else if (g.num === N.addDummyPrefix) normalizer.addDummyPrefix = r.bool(g, 'add_dummy_prefix');
        else if (g.num === N.removeExtraWhitespaces) {
          normalizer.removeExtraWhitespaces = r.bool(g, 'remove_extra_whitespaces');
        } else if (g.num === N.escapeWhitespaces) {
          normalizer.escapeWhitespaces = r.bool(g, 'escape_whitespaces');
        }
      }
    }
  }
  if (pieces.length === 0) {
    throw bad(
      name,
      `no pieces (${fmt(bytes.length)} bytes): this is not a SentencePiece tokenizer.model${hint(bytes)}, or it is empty. Use the tokenizer.model from the model's folder.`,
    );
  }
  // SentencePiece always writes both (after the pieces): without them the file was cut short
  if (!hasTrainer || !hasNormalizer) {
    throw bad(
      name,
      `${fmt(pieces.length)} pieces but no ${hasTrainer ? 'normalizer_spec' : 'trainer_spec'} (${fmt(bytes.length)} bytes): the file is cut short or damaged (SentencePiece always writes it). Download it again.`,
    );
  }
  return { pieces, trainer, normalizer };
}

/**
 * The vocabulary of a tokenizer.model, as spm.ts builds it from GGUF metadata: pieces, scores and
 * types as stored; BOS/EOS/unknown/padding from trainer_spec (-1 = none); add_space_prefix from
 * normalizer_spec.add_dummy_prefix; add BOS, not EOS (the file does not say; LLaMA's defaults).
 * Throws BAD_FILE for a model other than BPE or with settings SpmTokenizer does not implement.
 */
export function spmVocabFromModelProto(bytes: Uint8Array, name = 'tokenizer.model'): SpmVocab {
  const m = readSpmModelProto(bytes, name);
  const t = m.trainer;
  const nz = m.normalizer;
  const needed =
    'dust2gold reads LLaMA-2-style SentencePiece BPE tokenizers (model_type BPE, normalization "identity", whitespace kept as is)';
  if (t.modelType !== SPM_MODEL_TYPE.bpe) {
    const what = MODEL_TYPE_NAMES[t.modelType] ?? `model_type ${t.modelType}, unknown to SentencePiece`;
    throw bad(
      name,
      `this SentencePiece tokenizer is ${what}, not BPE; ${needed}. Pick a LLaMA-2-family model (LLaMA 2, TinyLlama, Mistral, Vicuna, ...).`,
    );
  }
  const refuse = (what: string) => bad(name, `${what}, which dust2gold does not implement; ${needed}.`);
  if (nz.precompiledCharsmapBytes > 0) {
    throw refuse(
      `the tokenizer normalizes text with the rule "${nz.name || 'custom'}" (${fmt(nz.precompiledCharsmapBytes)} bytes of compiled rules, e.g. NFKC)`,
    );
  }
  if (nz.removeExtraWhitespaces) {
    throw refuse('the tokenizer removes extra whitespace (normalizer_spec.remove_extra_whitespaces)');
  }
  if (!nz.escapeWhitespaces) {
    throw refuse('the tokenizer keeps spaces as spaces (normalizer_spec.escape_whitespaces false)');
  }
  if (t.treatWhitespaceAsSuffix) {
    throw refuse('the tokenizer puts "▁" after words (trainer_spec.treat_whitespace_as_suffix)');
  }
  const n = m.pieces.length;
  const types = new Array<number>(n);
  m.pieces.forEach((p, i) => {
    if (!(p.type >= 1 && p.type <= 6)) {
      throw bad(
        name,
        `piece ${i} (${JSON.stringify(p.piece)}) has type ${p.type}; SentencePiece's types are 1–6 (normal, unknown, control, user-defined, unused, byte): the file is damaged.`,
      );
    }
    types[i] = p.type;
  });
  for (const [what, id] of [
    ['BOS (bos_id)', t.bosId],
    ['EOS (eos_id)', t.eosId],
  ] as const) {
    if (id < 0) {
      throw bad(
        name,
        `the tokenizer has no ${what} piece: dust2gold needs LLaMA's BOS and EOS tokens to generate. Use a LLaMA-2-family tokenizer.model.`,
      );
    }
  }
  const v: MutableVocab = {
    tokens: m.pieces.map((p) => p.piece),
    scores: m.pieces.map((p) => p.score),
    types,
    bos: t.bosId,
    eos: t.eosId,
    unk: t.unkId < 0 ? null : t.unkId,
    pad: t.padId < 0 ? null : t.padId,
    addBos: true,
    addEos: false,
    addSpacePrefix: nz.addDummyPrefix,
  };
  return v;
}

/**
 * The SentencePiece tokenizer of a tokenizer.model (spmVocabFromModelProto, then SpmTokenizer).
 * With `modelVocabSize`, checks that the model has one embedding row per token (VOCAB_MISMATCH).
 */
export function spmTokenizerFromModelProto(
  bytes: Uint8Array,
  name = 'tokenizer.model',
  modelVocabSize?: number,
  modelName = 'the model',
): SpmTokenizer {
  const tok = new SpmTokenizer(spmVocabFromModelProto(bytes, name), name);
  if (modelVocabSize !== undefined) checkTokenizerVocab(tok.vocabSize, modelVocabSize, tok.name, modelName);
  return tok;
}

// ---------------------------------------------------------------------------------------------
// tokenizer.json: Hugging Face tokenizers, LLaMA (SentencePiece BPE) layout
