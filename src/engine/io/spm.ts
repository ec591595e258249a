/**
 * The tokenizer of a LLaMA GGUF file: SentencePiece BPE ("llama" in `tokenizer.ggml.model`), built
 * from the file's metadata, with SentencePiece's exact encode and decode (checked against
 * sentencepiece 0.1.97 on tests/fixtures/spm, written by tools/make_spm_fixtures.py). See the
 * "Tokenizer" section of docs/gguf.md.
 *
 * Facts from (read, no code copied): llama.cpp's src/llama-vocab.cpp (`llm_tokenizer_spm_session`,
 * `tokenize`, `token_to_piece`, `byte_to_token`, the metadata keys and their defaults) and
 * gguf-py/gguf/constants.py (token types); sentencepiece's src/bpe_model.cc (`Model::Encode`:
 * merge order, frozen user-defined symbols, resegmentation of unused pieces) and
 * src/sentencepiece_processor.cc (byte fallback, unknown fusing, `Decode`).
 *
 * Encode: text → " " + text (add_space_prefix) with every U+0020 replaced by "▁" (U+2581); split
 * into characters (a user-defined piece matched at a position is one frozen symbol); repeatedly
 * merge the adjacent pair whose concatenation is the highest-scoring piece (leftmost on ties);
 * a symbol that is no piece becomes its UTF-8 bytes as `<0xXX>` pieces (byte fallback).
 *
 * @example
 *   const tok = spmTokenizerFromGguf(await readGgufHeader(fromBlob(file)), config.vocabSize);
 *   tok.encode('Hello world', tok.addBos, tok.addEos); // [1, 15043, 3186] for LLaMA 2
 *   tok.decode([15043, 3186]);                          // 'Hello world'
 */
import { EngineError } from '../errors.ts';
import { checkTokenizerVocab } from './chartok.ts';
import type { GgufFile } from './gguf.ts';
import { metaArray, metaNumber, metaString } from './gguf-llama.ts';
import type { StreamDecoder } from './tokenizer.ts';

/** GGUF token types (gguf-py TokenType; the same numbers as SentencePiece's piece types). */
export const SPM_TOKEN_TYPE = {
  undefined: 0,
  normal: 1,
  unknown: 2,
  control: 3,
  userDefined: 4,
  unused: 5,
  byte: 6,
} as const;
export type SpmTokenTypeName = keyof typeof SPM_TOKEN_TYPE;
const TYPE_NAMES: readonly SpmTokenTypeName[] = [
  'undefined',
  'normal',
  'unknown',
  'control',
  'userDefined',
  'unused',
  'byte',
];

/** What a SentencePiece vocabulary is made of (a GGUF file's tokenizer.ggml.* entries). */
export interface SpmVocab {
  /** Pieces, "▁" for a space, "<0x0A>" for a byte. */
  readonly tokens: readonly string[];
  /** One score per token (higher merges first); default 0 for all. */
  readonly scores?: ArrayLike<number>;
  /** One GGUF token type per token (SPM_TOKEN_TYPE); default all normal. */
  readonly types?: ArrayLike<number>;
  /** Default 1, 2 and 0 (llama.cpp's defaults for "llama" files); pad default none. */
  readonly bos?: number;
  readonly eos?: number;
  readonly unk?: number | null;
  readonly pad?: number | null;
  /** Whether prompts start with BOS / end with EOS (default true / false). */
  readonly addBos?: boolean;
  readonly addEos?: boolean;
  /** SentencePiece's add_dummy_prefix: a "▁" before the text (default true). */
  readonly addSpacePrefix?: boolean;
}

/** SentencePiece's default unk_surface (LLaMA's too): " ⁇ ". */
export const UNK_SURFACE = ' \u2047 ';
const SPACE = '\u2581';
const TE = new TextEncoder();

interface Pair {
  score: number;
  left: number;
  right: number;
  len: number;
}

/** Max-heap of pairs: higher score first, then smaller left index (SentencePiece's agenda order). */
class Agenda {
  private h: Pair[] = [];
  private static before(a: Pair, b: Pair): boolean {
    return a.score > b.score || (a.score === b.score && a.left < b.left);
  }
  get size(): number {
    return this.h.length;
  }
  push(p: Pair): void {
    const h = this.h;
    let i = h.push(p) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!Agenda.before(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }
  pop(): Pair {
    const h = this.h;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && Agenda.before(h[l]!, h[m]!)) m = l;
        if (r < h.length && Agenda.before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

export class SpmTokenizer {
  readonly name: string;
  readonly vocabSize: number;
  readonly bos: number;
  readonly eos: number;
  readonly unk: number | null;
  readonly pad: number | null;
  readonly addBos: boolean;
  readonly addEos: boolean;
  readonly addSpacePrefix: boolean;
  private readonly tokens: readonly string[];
  private readonly scores: Float32Array;
  private readonly types: Uint8Array;
  /** Every piece → id. */
  private readonly ids = new Map<string, number>();
  /** Pieces a merge may produce (normal, user-defined, unused, undefined): SentencePiece's pieces_. */
  private readonly mergeable = new Map<string, number>();
  /** User-defined pieces by first UTF-16 unit, longest first. */
  private readonly userDefined = new Map<string, string[]>();
  /** Byte b → its token (`<0xXX>`, else the one-character piece for ASCII), or -1. */
  private readonly byteIds = new Int32Array(256).fill(-1);
  /** Decoded text of each token (▁ → space) as UTF-8, for decodeBytes. */
  private readonly pieceBytes: (Uint8Array | undefined)[];

  /**
   * Throws BAD_FILE for an unusable vocabulary (no tokens, a score or type list of another length,
   * an unknown type, duplicate pieces, special ids outside the vocabulary).
   */
  constructor(v: SpmVocab, name = 'tokenizer') {
    this.name = name;
    const n = v.tokens.length;
    const bad = (msg: string) => new EngineError('BAD_FILE', `${name}: ${msg}`);
    if (n === 0) throw bad('the vocabulary is empty: the file has no usable tokenizer.');
    if (v.scores && v.scores.length !== n) {
      throw bad(
        `${fmt(n)} tokens but ${fmt(v.scores.length)} scores: every token needs one score; the file is damaged or was written by a broken converter.`,
      );
    }
    if (v.types && v.types.length !== n) {
      throw bad(
        `${fmt(n)} tokens but ${fmt(v.types.length)} token types: every token needs one type; the file is damaged or was written by a broken converter.`,
      );
    }
    this.vocabSize = n;
    this.scores = new Float32Array(n);
    if (v.scores) this.scores.set(Array.from(v.scores));
    this.types = new Uint8Array(n).fill(SPM_TOKEN_TYPE.normal);
    const tokens: string[] = new Array<string>(n);
    for (let i = 0; i < n; i++) {
      if (v.types) {
        const t = v.types[i]!;
        if (!(Number.isInteger(t) && t >= 0 && t <= 6)) {
          throw bad(
            `token ${i} (${JSON.stringify(v.tokens[i])}) has type ${t}; GGUF token types are 0–6 (normal 1, unknown 2, control 3, user-defined 4, unused 5, byte 6): the file is damaged.`,
          );
        }
        this.types[i] = t;
      }
      // llama.cpp renames an empty piece so that it can never match text
      const p = v.tokens[i] === '' ? `[EMPTY_${i}]` : v.tokens[i]!;
      tokens[i] = p;
      const prev = this.ids.get(p);
      if (prev !== undefined) {
        throw bad(
          `the piece ${JSON.stringify(p)} appears twice in the vocabulary (tokens ${prev} and ${i}): the file is damaged or was written by a broken converter.`,
        );
      }
      this.ids.set(p, i);
      const t = this.types[i]!;
      if (t === SPM_TOKEN_TYPE.userDefined) {
        const list = this.userDefined.get(p[0]!) ?? [];
        list.push(p);
        list.sort((a, b) => b.length - a.length);
        this.userDefined.set(p[0]!, list);
      }
      if (t !== SPM_TOKEN_TYPE.control && t !== SPM_TOKEN_TYPE.unknown && t !== SPM_TOKEN_TYPE.byte) {
        this.mergeable.set(p, i);
      }
    }
    this.tokens = tokens;
    const special = (what: string, id: number | null | undefined, dflt: number | null): number | null => {
      const x = id === undefined ? dflt : id;
      if (x === null) return null;
      if (!(Number.isInteger(x) && x >= 0 && x < n)) {
        if (id === undefined) return null; // a default outside a tiny vocabulary: none
        throw bad(
          `the ${what} token id is ${x}, outside the vocabulary (0–${fmt(n - 1)}): the file is damaged.`,
        );
      }
      return x;
    };
    const bos = special('BOS', v.bos, 1);
    const eos = special('EOS', v.eos, 2);
    if (bos === null || eos === null) {
      throw bad(
        `a ${fmt(n)}-token vocabulary without ${bos === null ? 'a BOS' : 'an EOS'} token: generation needs both.`,
      );
    }
    this.bos = bos;
    this.eos = eos;
    this.unk = special('unknown', v.unk, 0);
    this.pad = special('padding', v.pad, null);
    this.addBos = v.addBos ?? true;
    this.addEos = v.addEos ?? false;
    this.addSpacePrefix = v.addSpacePrefix ?? true;
    for (let b = 0; b < 256; b++) {
      const hex = `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
      const id = this.ids.get(hex) ?? (b < 0x80 ? this.ids.get(String.fromCharCode(b)) : undefined);
      if (id !== undefined) this.byteIds[b] = id;
    }
    this.pieceBytes = new Array<Uint8Array | undefined>(n);
  }

  /** Reads the tokenizer of a GGUF file (see spmTokenizerFromGguf, which also checks the model's vocabulary size). */
  static fromGguf(file: GgufFile): SpmTokenizer {
    return spmTokenizerFromGguf(file);
  }

  /** The piece of a token as stored ("▁Hello", "<0x0A>", "<s>"). */
  piece(token: number): string {
    this.check(token);
    return this.tokens[token]!;
  }

  score(token: number): number {
    this.check(token);
    return this.scores[token]!;
  }

  tokenType(token: number): SpmTokenTypeName {
    this.check(token);
    return TYPE_NAMES[this.types[token]!]!;
  }

  /**
   * SentencePiece's encode: optional BOS, the pieces of the text, optional EOS. An empty text
   * has no pieces (not even the "▁" prefix). BOS/EOS written in the text ("<s>") are plain text.
   */
  encode(text: string, bos: boolean, eos: boolean): number[] {
    const out: number[] = bos ? [this.bos] : [];
    if (text.length > 0) {
      const wellFormed = text.replace(
        /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g,
        '\uFFFD',
      );
      const normalized = (this.addSpacePrefix ? ' ' + wellFormed : wellFormed).replaceAll(' ', SPACE);
      this.encodeNormalized(normalized, out);
    }
    if (eos) out.push(this.eos);
    return out;
  }

  private encodeNormalized(s: string, out: number[]): void {
    // symbols: [start, end) in s, linked list, frozen when a user-defined piece
    const start: number[] = [];
    const len: number[] = [];
    const prev: number[] = [];
    const next: number[] = [];
    const frozen: boolean[] = [];
    for (let i = 0; i < s.length;) {
      let l = 0;
      let freeze = false;
      const cands = this.userDefined.get(s[i]!);
      if (cands) {
        const hit = cands.find((c) => s.startsWith(c, i));
        if (hit) {
          l = hit.length;
          freeze = true;
        }
      }
      if (l === 0) l = s.codePointAt(i)! > 0xffff ? 2 : 1;
      const k = start.length;
      start.push(i);
      len.push(l);
      prev.push(k - 1);
      next.push(i + l < s.length ? k + 1 : -1);
      frozen.push(freeze);
      i += l;
    }
    const agenda = new Agenda();
    // unused piece → the two pieces it was made of (sentencepiece's rev_merge)
    const revMerge = new Map<string, [string, string]>();
    const text = (k: number) => s.slice(start[k]!, start[k]! + len[k]!);
    const tryPair = (left: number, right: number) => {
      if (left < 0 || right < 0 || frozen[left] || frozen[right]) return;
      const piece = s.slice(start[left]!, start[left]! + len[left]! + len[right]!);
      const id = this.mergeable.get(piece);
      if (id === undefined) return;
      agenda.push({ score: this.scores[id]!, left, right, len: piece.length });
      if (this.types[id] === SPM_TOKEN_TYPE.unused) revMerge.set(piece, [text(left), text(right)]);
    };
    for (let k = 1; k < start.length; k++) tryPair(k - 1, k);
    while (agenda.size > 0) {
      const p = agenda.pop();
      const l = len[p.left]!;
      const r = len[p.right]!;
      if (l === 0 || r === 0 || l + r !== p.len) continue; // a side was merged since
      len[p.left] = l + r;
      len[p.right] = 0;
      const after = next[p.right]!;
      next[p.left] = after;
      if (after >= 0) prev[after] = p.left;
      tryPair(prev[p.left]!, p.left);
      tryPair(p.left, after);
    }
    let lastUnk = false;
    const emit = (piece: string) => {
      const id = this.ids.get(piece);
      const t = id === undefined ? -1 : this.types[id]!;
      if (id !== undefined && t !== SPM_TOKEN_TYPE.unknown) {
        const rm = t === SPM_TOKEN_TYPE.unused ? revMerge.get(piece) : undefined;
        if (rm) {
          emit(rm[0]);
          emit(rm[1]);
          return;
        }
        out.push(id);
        lastUnk = false;
        return;
      }
      const bytes = Array.from(TE.encode(piece), (b) => this.byteIds[b]!);
      if (bytes.every((b) => b >= 0)) {
        out.push(...bytes);
        lastUnk = false;
      } else if (this.unk !== null) {
        if (!lastUnk) out.push(this.unk); // sentencepiece fuses a run of unknowns into one
        lastUnk = true;
      } else {
        throw new EngineError(
          'BAD_ARGUMENT',
          `${this.name} cannot encode ${JSON.stringify(piece.replaceAll(SPACE, ' '))}: the vocabulary has neither byte tokens nor an unknown token for it.`,
        );
      }
    };
    for (let k = 0; k !== -1; k = next[k]!) emit(text(k));
  }

  /**
   * SentencePiece's decode: control tokens (BOS, EOS) print nothing, the unknown token " ⁇ ",
   * "▁" a space, runs of byte tokens their bytes as UTF-8 (each byte of an invalid sequence one
   * U+FFFD), and the first piece that is not a control token loses one leading "▁" (when
   * add_space_prefix is on, as llama.cpp's detokenizer).
   */
  decode(ids: readonly number[]): string {
    const d = this.createStreamDecoder();
    let s = '';
    for (const id of ids) s += d.push(-1, id);
    return s + d.flush();
  }

  /**
   * The bytes of one token as text: its piece with "▁" as a space, a byte token's byte, " ⁇ " for
   * the unknown token, nothing for control tokens. `prev` is unused: the leading-space rule (the
   * first piece loses its "▁") needs the whole sequence and is applied by decode() and the stream
   * decoder, as SentencePiece does.
   */
  decodeBytes(_prev: number, token: number): Uint8Array {
    this.check(token);
    const t = this.types[token]!;
    if (t === SPM_TOKEN_TYPE.byte) return Uint8Array.of(this.byteOf(token));
    let b = this.pieceBytes[token];
    if (!b) {
      b = TE.encode(this.surface(token, false));
      this.pieceBytes[token] = b;
    }
    return b;
  }

  /**
   * Decodes a sequence token by token, as decode() does for the whole: whole characters as soon
   * as they are complete, an unfinished byte sequence held until the next token shows it ends.
   */
  createStreamDecoder(): StreamDecoder {
    let first = true;
    const pending: number[] = [];
    const drain = (final: boolean): string => {
      const { text, used } = decodeUtf8(pending, final);
      pending.splice(0, used);
      return text;
    };
    return {
      push: (_prev, token) => {
        this.check(token);
        const t = this.types[token]!;
        if (t === SPM_TOKEN_TYPE.byte) {
          first = false;
          pending.push(this.byteOf(token));
          return drain(false);
        }
        const head = drain(true); // any other token ends a run of bytes
        if (t === SPM_TOKEN_TYPE.control || t === SPM_TOKEN_TYPE.undefined) return head;
        const s = this.surface(token, first);
        first = false;
        return head + s;
      },
      flush: () => drain(true),
    };
  }

  /** The text of a non-byte token; `first`: drop one leading "▁" (SentencePiece's first piece). */
  private surface(token: number, first: boolean): string {
    const t = this.types[token]!;
    if (t === SPM_TOKEN_TYPE.control || t === SPM_TOKEN_TYPE.undefined) return '';
    if (t === SPM_TOKEN_TYPE.unknown) return UNK_SURFACE;
    let p = this.tokens[token]!;
    if (first && this.addSpacePrefix && p.startsWith(SPACE)) p = p.slice(1);
    return p.replaceAll(SPACE, ' ');
  }

  private byteOf(token: number): number {
    const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(this.tokens[token]!);
    if (!m) {
      throw new EngineError(
        'BAD_FILE',
        `${this.name}: token ${token} is a byte token but its piece is ${JSON.stringify(this.tokens[token])}, not "<0xXX>": the file is damaged.`,
      );
    }
    return parseInt(m[1]!, 16);
  }

  private check(token: number): void {
    if (!(Number.isInteger(token) && token >= 0 && token < this.vocabSize)) {
      throw new EngineError(
        'BAD_ARGUMENT',
        `token ${token} is outside the vocabulary of ${this.name} (0..${this.vocabSize - 1}).`,
      );
    }
  }
}

/**
 * UTF-8 → text with sentencepiece's rule for bad bytes (its DecodeUTF8): a character is taken
 * when it is well formed (no overlong form, no surrogate, at most U+10FFFF), else its first byte
 * becomes U+FFFD and decoding goes on at the next byte. Not `final`: stops before a character
 * whose bytes have not all arrived.
 */
function decodeUtf8(b: readonly number[], final: boolean): { text: string; used: number } {
  let s = '';
  let i = 0;
  const cont = (k: number) => k < b.length && (b[k]! & 0xc0) === 0x80;
  while (i < b.length) {
    const c = b[i]!;
    const need =
      c < 0x80 ? 1 : (c & 0xe0) === 0xc0 ? 2 : (c & 0xf0) === 0xe0 ? 3 : (c & 0xf8) === 0xf0 ? 4 : 1;
    if (i + need > b.length && !final) break;
    let cp = -1;
    if (need === 1) cp = c < 0x80 ? c : -1;
    else if (i + need <= b.length) {
      let v = c & (0x7f >> need);
      let ok = true;
      for (let k = 1; k < need; k++) {
        ok &&= cont(i + k);
        v = (v << 6) | (b[i + k]! & 0x3f);
      }
      const min = need === 2 ? 0x80 : need === 3 ? 0x800 : 0x10000;
      if (ok && v >= min && v <= 0x10ffff && !(v >= 0xd800 && v < 0xe000)) cp = v;
    }
    if (cp < 0) {
      s += '\uFFFD';
      i += 1;
    } else {
      s += String.fromCodePoint(cp);
      i += need;
    }
  }
  return { text: s, used: i };
}

function fmt(v: number): string {
  return v.toLocaleString('en-US');
}

function metaBool(file: GgufFile, key: string): boolean | undefined {
  const kv = file.metadata.get(key);
  if (!kv) return undefined;
  if (kv.type !== 'bool') {
    throw new EngineError(
      'BAD_FILE',
      `${file.name}: metadata ${key} is a ${kv.type}, expected a bool: the file is corrupt or was written by a converter dust2gold does not know.`,
    );
  }
  return kv.value;
}

const OTHER_MODELS: Record<string, string> = {
  gpt2: 'a byte-level BPE tokenizer with merge rules (GPT-2 style, as in Llama 3, Qwen, Falcon)',
  bert: 'a WordPiece tokenizer (BERT style)',
  t5: 'a SentencePiece unigram tokenizer (T5 style)',
  rwkv: 'an RWKV tokenizer',
  plamo2: 'a PLaMo-2 tokenizer',
  gemma4: 'a Gemma 4 BPE tokenizer',
  no_vocab: 'no vocabulary at all',
  none: 'no vocabulary at all',
};

/**
 * The SentencePiece tokenizer of a GGUF file (tokenizer.ggml.model = "llama": LLaMA 1 and 2,
 * Mistral, and their fine-tunes). Reads tokenizer.ggml.tokens (required), scores (f32 or i32,
 * default 0), token_type (i32, default normal), bos/eos/unknown/padding_token_id (defaults 1, 2, 0,
 * none), add_bos_token (default true), add_eos_token (default false), add_space_prefix (default
 * true). With `modelVocabSize`, checks that the model has as many token rows as the tokenizer has
 * tokens (VOCAB_MISMATCH otherwise). Other tokenizer models are refused with BAD_FILE, by name.
 */
export function spmTokenizerFromGguf(
  file: GgufFile,
  modelVocabSize?: number,
  modelName = 'the model',
): SpmTokenizer {
  const name = file.name;
  const model = metaString(file, 'tokenizer.ggml.model');
  if (model === undefined) {
    throw new EngineError(
      'BAD_FILE',
      `${name} has no tokenizer (no tokenizer.ggml.model entry): it was saved without its vocabulary. Use a GGUF file that includes the tokenizer, as the files llama.cpp's converter writes do.`,
    );
  }
  if (model !== 'llama') {
    const what = OTHER_MODELS[model] ?? 'a tokenizer type dust2gold does not know';
    throw new EngineError(
      'BAD_FILE',
      `${name} has a "${model}" tokenizer (${what}); dust2gold reads SentencePiece tokenizers only (tokenizer.ggml.model "llama", as in LLaMA 1 and 2 and Mistral): pick such a model file.`,
    );
  }
  const tokensArr = metaArray(file, 'tokenizer.ggml.tokens');
  if (!tokensArr) {
    throw new EngineError(
      'BAD_FILE',
      `${name} has no tokenizer.ggml.tokens: its tokenizer has no vocabulary. The file is incomplete; download it again or use another conversion.`,
    );
  }
  if (tokensArr.itemType !== 'string') {
    throw new EngineError(
      'BAD_FILE',
      `${name}: tokenizer.ggml.tokens is an array of ${tokensArr.itemType}, expected strings: the file is corrupt.`,
    );
  }
  const numbers = (key: string, types: readonly string[]): number[] | undefined => {
    const a = metaArray(file, key);
    if (!a) return undefined;
    if (!types.includes(a.itemType)) {
      throw new EngineError(
        'BAD_FILE',
        `${name}: ${key} is an array of ${a.itemType}, expected ${types.join(' or ')}: the file is corrupt.`,
      );
    }
    return a.items as number[];
  };
  const id = (key: string): number | undefined => {
    const v = metaNumber(file, key);
    if (v !== undefined && !Number.isInteger(v)) {
      throw new EngineError('BAD_FILE', `${name}: ${key} is ${v}, not a token id: the file is corrupt.`);
    }
    return v;
  };
  const scores = numbers('tokenizer.ggml.scores', ['f32', 'i32']);
  const types = numbers('tokenizer.ggml.token_type', ['i32']);
  const v: {
    -readonly [K in keyof SpmVocab]: SpmVocab[K];
  } = { tokens: tokensArr.items as string[] };
  if (scores) v.scores = scores;
  if (types) v.types = types;
  const bos = id('tokenizer.ggml.bos_token_id');
  const eos = id('tokenizer.ggml.eos_token_id');
  const unk = id('tokenizer.ggml.unknown_token_id');
  const pad = id('tokenizer.ggml.padding_token_id');
  if (bos !== undefined) v.bos = bos;
  if (eos !== undefined) v.eos = eos;
  if (unk !== undefined) v.unk = unk;
  if (pad !== undefined) v.pad = pad;
  const addBos = metaBool(file, 'tokenizer.ggml.add_bos_token');
  const addEos = metaBool(file, 'tokenizer.ggml.add_eos_token');
  const addSpacePrefix = metaBool(file, 'tokenizer.ggml.add_space_prefix');
  if (addBos !== undefined) v.addBos = addBos;
  if (addEos !== undefined) v.addEos = addEos;
  if (addSpacePrefix !== undefined) v.addSpacePrefix = addSpacePrefix;
  const tok = new SpmTokenizer(v, `${name}'s tokenizer`);
  if (modelVocabSize !== undefined) checkTokenizerVocab(tok.vocabSize, modelVocabSize, tok.name, modelName);
  return tok;
}
