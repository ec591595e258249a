/**
 * stories260K (llama2.c, MIT) as a GGUF file, written with our writer (tools/gguf-write.ts): the
 * model's weights in F32 or Q8_0 matrices (norms F32; w2's rows of 172 values are not whole q8_0
 * blocks and stay F32), and llama2.c's tok512 vocabulary as tokenizer.ggml.* metadata, the way
 * llama.cpp's converter writes a SentencePiece vocabulary: pieces with "▁" for a space, scores,
 * token types (unknown, control, byte, normal), BOS 1, EOS 2, unknown 0.
 *
 * llama2.c's tokenizer export (its tokenizer.py) changed two things this undoes: "▁" became " ", and
 * BOS / EOS became "\n<s>\n" / "\n</s>\n"; the scores are SentencePiece's.
 */
import { readFileSync } from 'node:fs';
import type { SupportedGgmlType } from '../../src/engine/io/gguf.ts';
import { llamaGgufMetadata, llamaGgufTensors, meta, writeGguf } from '../../tools/gguf-write.ts';
import { stories260K } from './stories.ts';

export interface Tok512Vocab {
  tokens: string[];
  scores: number[];
  types: number[];
}

/** tok512.bin as a SentencePiece vocabulary (GGUF token types: 2 unknown, 3 control, 6 byte, 1 normal). */
export function tok512Vocab(): Tok512Vocab {
  const b = readFileSync('public/models/tok512.bin');
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const tokens: string[] = [];
  const scores: number[] = [];
  const types: number[] = [];
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  for (let o = 4; o < b.byteLength;) {
    const score = v.getFloat32(o, true);
    const len = v.getInt32(o + 4, true);
    const piece = utf8.decode(b.subarray(o + 8, o + 8 + len));
    o += 8 + len;
    const id = tokens.length;
    tokens.push(id === 1 ? '<s>' : id === 2 ? '</s>' : piece.replaceAll(' ', '\u2581'));
    scores.push(score);
    types.push(id === 0 ? 2 : id < 3 ? 3 : /^<0x[0-9A-F]{2}>$/.test(piece) ? 6 : 1);
  }
  return { tokens, scores, types };
}

/** stories260K as GGUF bytes, matrices in `type`, with the tok512 tokenizer in its metadata. */
export function stories260KGguf(type: SupportedGgmlType): Uint8Array<ArrayBuffer> {
  const { config, weights } = stories260K();
  const metadata = llamaGgufMetadata(config, type, { name: 'stories260K', tokenizer: false });
  const { tokens, scores, types } = tok512Vocab();
  metadata.set('tokenizer.ggml.model', meta.string('llama'));
  metadata.set('tokenizer.ggml.tokens', meta.array('string', tokens));
  metadata.set('tokenizer.ggml.scores', meta.array('f32', scores));
  metadata.set('tokenizer.ggml.token_type', meta.array('i32', types));
  metadata.set('tokenizer.ggml.bos_token_id', meta.u32(1));
  metadata.set('tokenizer.ggml.eos_token_id', meta.u32(2));
  metadata.set('tokenizer.ggml.unknown_token_id', meta.u32(0));
  return writeGguf({ version: 3, metadata, tensors: llamaGgufTensors(config, weights, type) });
}
