/**
 * llama2.c's BPE tokenizer (tokenizer.bin / tok512.bin), with run.c's exact encode and decode rules.
 *
 * File: int32 max_token_length, then per token: float32 score, int32 length, `length` bytes. The
 * file does not store the token count: the model's vocabSize says it, and parse() checks the file
 * holds exactly that many tokens.
 *
 * Pieces are byte strings. Internally each is a "binary string" (one char per byte, 0..255) so
 * that concatenation, lookup and ordering behave like run.c's C strings.
 *
 * @example
 *   const tok = Llama2cTokenizer.parse(buf, config.vocabSize, 'tok512.bin');
 *   tok.encode('Once upon a time', true, false); // [1, ...]
 *   const dec = tok.createStreamDecoder();
 *   let text = ''; let prev = 1;
 *   for (const t of tokens) { text += dec.push(prev, t); prev = t; }
 *   text += dec.flush();
 */
import { EngineError } from '../errors.ts';

const BYTE_PIECE = /^<0x([0-9A-Fa-f]{1,2})/; // run.c: sscanf(piece, "<0x%02hhX>", &byte)
const BYTE_OFFSET = 3; // byte b is token b + 3: ids 0..2 are <unk>, <s>, </s>

/** Turns raw token bytes into text piece by piece, holding back a UTF-8 character split across byte tokens. */
export interface StreamDecoder {
  /** run.c's decode(prev, token), then every complete UTF-8 character so far. */
  push(prev: number, token: number): string;
  /** What is left at the end (an unfinished character becomes U+FFFD). */
  flush(): string;
}

export class Llama2cTokenizer {
  readonly bos = 1;
  readonly eos = 2;
  readonly vocabSize: number;
  readonly maxTokenLength: number;
  /** Pieces as binary strings (one char per byte). */
  private readonly pieces: readonly string[];
  private readonly scores: Float32Array;
  /** piece → id, like run.c's sorted_vocab + bsearch (first id wins on duplicates). */
  private readonly lookup: Map<string, number>;

  private constructor(pieces: string[], scores: Float32Array, maxTokenLength: number) {
    this.pieces = pieces;
    this.scores = scores;
    this.vocabSize = pieces.length;
    this.maxTokenLength = maxTokenLength;
    this.lookup = new Map();
    pieces.forEach((p, i) => {
      if (!this.lookup.has(p)) this.lookup.set(p, i);
    });
  }

  /**
   * Reads a llama2.c tokenizer file for a model with vocabSize tokens.
   * Throws TRUNCATED_FILE (ends inside a token), VOCAB_MISMATCH (another count of tokens),
   * BAD_FILE (not a tokenizer file).
   */
  static parse(buf: ArrayBuffer, vocabSize: number, name = 'tokenizer'): Llama2cTokenizer {
    if (buf.byteLength < 4) {
      throw new EngineError(
        'TRUNCATED_FILE',
        `${name} is ${buf.byteLength} bytes, too short to hold a tokenizer: the file is incomplete — download it again.`,
      );
    }
    const v = new DataView(buf);
    const bytes = new Uint8Array(buf);
    const maxTokenLength = v.getInt32(0, true);
    if (maxTokenLength <= 0 || maxTokenLength > 1 << 16) {
      throw new EngineError(
        'BAD_FILE',
        `${name} starts with max_token_length ${maxTokenLength}: this is not a llama2.c tokenizer file.`,
      );
    }
    const pieces: string[] = [];
    const scores: number[] = [];
    let o = 4;
    while (o < buf.byteLength) {
      if (o + 8 > buf.byteLength) {
        throw new EngineError(
          'TRUNCATED_FILE',
          `${name} ends inside token ${pieces.length} (${buf.byteLength} bytes): the file is incomplete — download it again.`,
        );
      }
      const score = v.getFloat32(o, true);
      const len = v.getInt32(o + 4, true);
      if (len < 0 || len > maxTokenLength || Number.isNaN(score)) {
        throw new EngineError(
          'BAD_FILE',
          `${name}: token ${pieces.length} has length ${len} (max ${maxTokenLength}) and score ${score}: this is not a llama2.c tokenizer file.`,
        );
      }
      o += 8;
      if (o + len > buf.byteLength) {
        throw new EngineError(
          'TRUNCATED_FILE',
          `${name} ends inside token ${pieces.length} (needs ${o + len} bytes, has ${buf.byteLength}): the file is incomplete — download it again.`,
        );
      }
      let s = '';
      for (let i = 0; i < len; i++) s += String.fromCharCode(bytes[o + i]!);
      pieces.push(s);
      scores.push(score);
      o += len;
    }
    if (pieces.length !== vocabSize) {
      throw new EngineError(
        'VOCAB_MISMATCH',
        `${name} has ${pieces.length} tokens but the model expects ${vocabSize}: use the tokenizer that came with the model.`,
      );
    }
    return new Llama2cTokenizer(pieces, Float32Array.from(scores), maxTokenLength);
  }

  /** Builds a tokenizer from pieces (UTF-8 text, or byte pieces like "<0x0A>") and scores; for tests and our own models. */
  static fromPieces(pieces: readonly string[], scores: ArrayLike<number>): Llama2cTokenizer {
    if (pieces.length !== scores.length)
      throw new EngineError(
        'BAD_ARGUMENT',
        `fromPieces: ${pieces.length} pieces but ${scores.length} scores: pass one score per piece.`,
      );
    const bin = pieces.map((p) => toBinary(new TextEncoder().encode(p)));
    return new Llama2cTokenizer(bin, Float32Array.from(scores), Math.max(1, ...bin.map((p) => p.length)));
  }

  /** Serializes to the llama2.c tokenizer file format. */
  toFile(): ArrayBuffer {
    let n = 4;
    for (const p of this.pieces) n += 8 + p.length;
    const buf = new ArrayBuffer(n);
    const v = new DataView(buf);
    v.setInt32(0, this.maxTokenLength, true);
    let o = 4;
    this.pieces.forEach((p, i) => {
      v.setFloat32(o, this.scores[i]!, true);
      v.setInt32(o + 4, p.length, true);
      o += 8;
      for (let j = 0; j < p.length; j++) v.setUint8(o + j, p.charCodeAt(j));
      o += p.length;
    });
    return buf;
  }

  /** The piece of a token as text (for display; byte pieces stay "<0xHH>"). */
  piece(token: number): string {
    return utf8(fromBinary(this.pieceBinary(token)));
  }

  /**
   * run.c's encode: optional BOS, a dummy-prefix " " token when text is not empty, one token per
   * UTF-8 code point (byte fallback: byte + 3 when the code point is not a piece), then repeatedly
   * merge the adjacent pair whose concatenation is the best-scoring piece (leftmost on ties).
   */
  encode(text: string, bos: boolean, eos: boolean): number[] {
    const tokens: number[] = [];
    if (bos) tokens.push(this.bos);
    const bytes = new TextEncoder().encode(text);
    if (bytes.length > 0) tokens.push(this.lookup.get(' ') ?? this.byteToken(0x20));
    // one code point at a time: a lead byte (or ASCII) and up to 3 continuation bytes (run.c's cap)
    let i = 0;
    while (i < bytes.length) {
      let end = i + 1;
      while (end < bytes.length && (bytes[end]! & 0xc0) === 0x80 && end - i < 4) end++;
      const cp = bytes.subarray(i, end);
      const id = this.lookup.get(toBinary(cp));
      if (id !== undefined) tokens.push(id);
      else for (const b of cp) tokens.push(this.byteToken(b));
      i = end;
    }
    for (;;) {
      let bestScore = Math.fround(-1e10);
      let bestId = -1;
      let bestIdx = -1;
      for (let j = 0; j < tokens.length - 1; j++) {
        const id = this.lookup.get(this.pieces[tokens[j]!]! + this.pieces[tokens[j + 1]!]!);
        if (id !== undefined && this.scores[id]! > bestScore) {
          bestScore = this.scores[id]!;
          bestId = id;
          bestIdx = j;
        }
      }
      if (bestIdx === -1) break;
      tokens.splice(bestIdx, 2, bestId);
    }
    if (eos) tokens.push(this.eos);
    return tokens;
  }

  /**
   * run.c's decode as bytes: the piece of `token`, without its leading space right after BOS, and
   * a `<0xHH>` piece as the one raw byte HH.
   */
  decodeBytes(prev: number, token: number): Uint8Array {
    let p = this.pieceBinary(token);
    if (prev === this.bos && p.startsWith(' ')) p = p.slice(1);
    const m = BYTE_PIECE.exec(p);
    if (m) return Uint8Array.of(parseInt(m[1]!, 16));
    return fromBinary(p);
  }

  /**
   * decodeBytes as a string. A raw byte ≥ 0x80 alone is not text and comes out as U+FFFD: to
   * print a stream, use createStreamDecoder(), which joins the bytes of a split character.
   */
  decodePiece(prev: number, token: number): string {
    return utf8(this.decodeBytes(prev, token));
  }

  /** Decodes a whole sequence (the first token's prev is BOS, as in generation). */
  decode(tokens: readonly number[], prev: number = this.bos): string {
    const d = this.createStreamDecoder();
    let s = '';
    for (const t of tokens) {
      s += d.push(prev, t);
      prev = t;
    }
    return s + d.flush();
  }

  /** A decoder that buffers the bytes of an unfinished UTF-8 character until its last byte arrives. */
  createStreamDecoder(): StreamDecoder {
    const td = new TextDecoder('utf-8', { fatal: false });
    return {
      push: (prev, token) => td.decode(this.decodeBytes(prev, token), { stream: true }),
      flush: () => td.decode(),
    };
  }

  private pieceBinary(token: number): string {
    const p = this.pieces[token];
    if (p === undefined)
      throw new EngineError(
        'BAD_ARGUMENT',
        `token ${token} is outside the vocabulary (0..${this.vocabSize - 1}).`,
      );
    return p;
  }

  private byteToken(b: number): number {
    const id = b + BYTE_OFFSET;
    if (id >= this.vocabSize)
      throw new EngineError(
        'BAD_ARGUMENT',
        `byte 0x${b.toString(16)} has no byte-fallback token in a ${this.vocabSize}-token vocabulary: the text cannot be encoded with this tokenizer.`,
      );
    return id;
  }
}

function toBinary(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

function fromBinary(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function utf8(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}
