import { describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.ts';
import { CharTokenizer, checkTokenizerVocab } from '../../src/engine/io/chartok.ts';

describe('CharTokenizer', () => {
  const tok = new CharTokenizer('0123456789+= ?é😀');

  it('numbers specials first, then the characters in order', () => {
    expect([tok.pad, tok.bos, tok.eos]).toEqual([0, 1, 2]);
    expect(tok.vocabSize).toBe(3 + 16);
    expect(tok.encode('1+2=3', true, true)).toEqual([1, 4, 13, 5, 14, 6, 2]);
    expect(tok.encode('😀', false, false)).toEqual([18]); // one code point, one token
  });

  it('round-trips text and JSON', () => {
    const s = '12 + 7 = 19? é😀';
    expect(tok.decode(tok.encode(s, true, true))).toBe(s);
    expect(tok.decode([0, 0, 1, 4, 2])).toBe('1'); // specials print nothing
    const back = CharTokenizer.fromJSON(JSON.parse(JSON.stringify(tok)));
    expect(back.encode(s, false, false)).toEqual(tok.encode(s, false, false));
  });

  it('rejects unknown characters, duplicates, bad ids and bad JSON', () => {
    expect(() => tok.encode('x', false, false)).toThrow(/"x" is not in the vocabulary/);
    expect(() => new CharTokenizer('aba')).toThrow(/"a" appears twice/);
    expect(() => tok.decode([99])).toThrow(EngineError);
    expect(() => CharTokenizer.fromJSON({ type: 'bpe' })).toThrow(/not a character tokenizer/);
  });
});

describe('checkTokenizerVocab', () => {
  it('passes equal vocabularies and refuses others with VOCAB_MISMATCH naming both files', () => {
    expect(() => checkTokenizerVocab(77, 77, 'a.tokenizer.json', 'a.safetensors')).not.toThrow();
    try {
      checkTokenizerVocab(12, 77, 'b.tokenizer.json', 'a.safetensors');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(EngineError);
      expect((e as EngineError).code).toBe('VOCAB_MISMATCH');
      expect((e as EngineError).message).toMatch(
        /b\.tokenizer\.json has 12 tokens but a\.safetensors expects 77/,
      );
    }
  });
});
