import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.ts';
import { Llama2cTokenizer } from '../../src/engine/io/tokenizer.ts';

function load(path: string): ArrayBuffer {
  const b = readFileSync(path);
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

function expectError(f: () => unknown, code: string, message: RegExp): void {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(EngineError);
    expect((e as EngineError).code).toBe(code);
    expect((e as EngineError).message).toMatch(message);
    return;
  }
  throw new Error(`expected EngineError ${code}`);
}

const file = load('public/models/tok512.bin');
const tok = Llama2cTokenizer.parse(file, 512, 'tok512.bin');

describe('llama2.c tokenizer (tok512)', () => {
  it('reads the vocabulary', () => {
    expect(tok.vocabSize).toBe(512);
    expect(tok.maxTokenLength).toBe(7);
    expect([tok.bos, tok.eos]).toEqual([1, 2]);
    expect(tok.piece(0)).toBe('<unk>');
    expect(tok.piece(3)).toBe('<0x00>');
    expect(tok.piece(258)).toBe('<0xFF>');
    expect(tok.piece(259)).toBe(' t');
    expect(tok.piece(410)).toBe(' ');
    expect(new Uint8Array(tok.toFile())).toEqual(new Uint8Array(file));
  });

  it('encodes like run.c', () => {
    // ids derived from the vocabulary (independently, by a Python transcription of run.c's encode)
    expect(tok.encode('a', false, false)).toEqual([261]); // dummy " " + "a" merge into " a"
    expect(tok.encode('Once upon a time', true, false)).toEqual([1, 403, 407, 261, 378]);
    expect(tok.encode('Once upon a time', true, true)).toEqual([1, 403, 407, 261, 378, 2]);
    expect(tok.encode('Hello, world!\n', false, false)).toEqual([346, 306, 414, 432, 263, 304, 341, 443, 13]); // "\n" → <0x0A> = 10 + 3
    expect(tok.encode('Lily and Ben', false, false)).toEqual([317, 269, 368, 302]);
    expect(tok.encode('  two  spaces', false, false)).toEqual([
      410, 410, 259, 424, 414, 410, 262, 427, 412, 331, 419,
    ]);
    // é is a piece; ✓ and 😀 are not: byte fallback, byte + 3
    expect(tok.encode('héllo ✓ 😀', false, false)).toEqual([
      270,
      485,
      306,
      414,
      410,
      0xe2 + 3,
      0x9c + 3,
      0x93 + 3,
      410,
      0xf0 + 3,
      0x9f + 3,
      0x98 + 3,
      0x80 + 3,
    ]);
    expect(tok.encode('', true, false)).toEqual([1]); // no dummy prefix for empty text
    expect(tok.encode('', false, false)).toEqual([]);
  });

  it('decodes like run.c', () => {
    expect(tok.decodePiece(1, 403)).toBe('Once'); // the leading space goes right after BOS
    expect(tok.decodePiece(261, 403)).toBe(' Once');
    expect(tok.decodePiece(5, 13)).toBe('\n'); // <0x0A> is the raw byte
    expect(Array.from(tok.decodeBytes(5, 0xe2 + 3))).toEqual([0xe2]);
    expect(tok.decodePiece(5, 0xe2 + 3)).toBe('\uFFFD'); // half a character alone
    expect(tok.decodePiece(5, 485)).toBe('é');
  });

  it('round-trips decode(encode(s)) for ASCII and UTF-8 with byte fallback', () => {
    for (const s of [
      'Once upon a time, there was a little girl named Lily.',
      'Hello, world!\n\ttabs & "quotes" {}',
      '  two  spaces',
      'héllo ✓ 😀 — naïve café ∑ 日本語',
    ]) {
      expect(tok.decode(tok.encode(s, true, false).slice(1))).toBe(s);
    }
  });

  it('streams split UTF-8 characters as whole characters', () => {
    const ids = tok.encode('✓😀!', true, false);
    const d = tok.createStreamDecoder();
    const parts: string[] = [];
    for (let i = 1; i < ids.length; i++) parts.push(d.push(ids[i - 1]!, ids[i]!));
    parts.push(d.flush());
    // ids: " ", e2 9c 93, f0 9f 98 80, "!" → characters appear only on their last byte
    expect(parts).toEqual(['', '', '', '✓', '', '', '', '😀', '!', '']);
    const d2 = tok.createStreamDecoder();
    expect(d2.push(5, 0xf0 + 3)).toBe('');
    expect(d2.flush()).toBe('\uFFFD'); // an unfinished character at the end
  });

  it('rejects a tokenizer of another vocabulary size', () => {
    expectError(
      () => Llama2cTokenizer.parse(file, 32000, 'tok512.bin'),
      'VOCAB_MISMATCH',
      /tok512\.bin has 512 tokens but the model expects 32000: use the tokenizer that came with the model/,
    );
    // a file with more tokens than the model
    const more = Llama2cTokenizer.fromPieces(['<unk>', '<s>', '</s>', 'a', 'b'], [0, 0, 0, -1, -2]).toFile();
    expectError(
      () => Llama2cTokenizer.parse(more, 4, 'tiny.bin'),
      'VOCAB_MISMATCH',
      /tiny\.bin has 5 tokens but the model expects 4/,
    );
  });

  it('rejects truncated and foreign files', () => {
    expectError(
      () => Llama2cTokenizer.parse(file.slice(0, file.byteLength - 3), 512),
      'TRUNCATED_FILE',
      /ends inside token 511.*download it again/,
    );
    expectError(() => Llama2cTokenizer.parse(file.slice(0, 2), 512), 'TRUNCATED_FILE', /too short/);
    const model = load('public/models/stories260K.bin');
    expectError(
      () => Llama2cTokenizer.parse(model, 512, 'stories260K.bin'),
      'BAD_FILE',
      /not a llama2.c tokenizer file/,
    );
  });
});
