// The Models view's checks before a model is chosen (checkModelFiles) and the model card's
// markdown subset (parseCard): text blocks only, nothing becomes HTML.
import { describe, expect, it } from 'vitest';
import { writeLlamaSafetensors } from '../../src/engine/io/checkpoint.ts';
import { CharTokenizer } from '../../src/engine/io/chartok.ts';
import { paramCount, type LlamaConfig } from '../../src/engine/model/config.ts';
import { randomLlamaWeights } from '../../src/engine/model/random.ts';
import { parseCard } from '../../src/app/lib/card-markdown.ts';
import { checkModelFiles } from '../../src/app/lib/model-files.ts';

const tok = new CharTokenizer('0123456789+=. ');
const config: LlamaConfig = {
  dim: 8,
  hiddenDim: 16,
  nLayers: 1,
  nHeads: 2,
  nKvHeads: 2,
  vocabSize: tok.vocabSize,
  maxSeqLen: 16,
  ropeTheta: 10000,
  normEps: 1e-5,
  sharedClassifier: true,
};
const bytes = () => {
  const b = writeLlamaSafetensors(config, randomLlamaWeights(config, 1));
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
};
const names = { model: 'm.safetensors', tokenizer: 'm.tokenizer.json' };

describe('checkModelFiles', () => {
  it('accepts a model with its tokenizer and reports config, parameters and characters', () => {
    const m = checkModelFiles(bytes(), JSON.stringify(tok.toJSON()), names);
    expect(m.config).toEqual(config);
    expect(m.params).toBe(paramCount(config));
    expect(m.chars).toBe(tok.chars);
  });
  it('refuses a truncated model, a tokenizer that is not JSON or not ours, and a vocabulary mismatch', () => {
    const tj = JSON.stringify(tok.toJSON());
    expect(() => checkModelFiles(bytes().slice(0, 200), tj, names)).toThrow(
      expect.objectContaining({ code: 'TRUNCATED_FILE' }),
    );
    expect(() => checkModelFiles(bytes(), '{"type": "char", "chars"', names)).toThrow(
      expect.objectContaining({
        code: 'BAD_FILE',
        message: expect.stringMatching(/m\.tokenizer\.json is not JSON/),
      }),
    );
    expect(() => checkModelFiles(bytes(), '{"type": "bpe"}', names)).toThrow(
      expect.objectContaining({ code: 'BAD_FILE' }),
    );
    const other = JSON.stringify(new CharTokenizer('0123456789+=. ab').toJSON());
    expect(() => checkModelFiles(bytes(), other, names)).toThrow(
      expect.objectContaining({ code: 'VOCAB_MISMATCH' }),
    );
  });
});

describe('parseCard', () => {
  it('headings, paragraphs, lists with continuation lines, pipe tables, bold and code spans', () => {
    const md = [
      '# Title **big**',
      '',
      'A paragraph',
      'on two lines with `code`.',
      '',
      '- one',
      '  more',
      '- **two**',
      '',
      '| a | b |',
      '|---|:-:|',
      '| 1 | `x` |',
    ].join('\r\n');
    expect(parseCard(md)).toEqual([
      { kind: 'h', level: 1, spans: [{ text: 'Title ' }, { text: 'big', bold: true }] },
      {
        kind: 'p',
        spans: [{ text: 'A paragraph on two lines with ' }, { text: 'code', code: true }, { text: '.' }],
      },
      { kind: 'ul', items: [[{ text: 'one more' }], [{ text: 'two', bold: true }]] },
      {
        kind: 'table',
        head: [[{ text: 'a' }], [{ text: 'b' }]],
        rows: [[[{ text: '1' }], [{ text: 'x', code: true }]]],
      },
    ]);
  });
  it('keeps HTML as text', () => {
    expect(parseCard('<img src=x onerror=alert(1)>')).toEqual([
      { kind: 'p', spans: [{ text: '<img src=x onerror=alert(1)>' }] },
    ]);
  });
});
