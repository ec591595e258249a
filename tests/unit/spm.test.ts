// The GGUF SentencePiece tokenizer (src/engine/io/spm.ts) against sentencepiece itself: the
// vocabulary and cases in tests/fixtures/spm were written by tools/make_spm_fixtures.py
// (sentencepiece 0.1.97, a BPE model trained with LLaMA's options). The vocabulary goes into a real
// GGUF file (tools/gguf-write.ts), is read back with readGgufHeader, and every case must give
// sentencepiece's ids and text exactly.
import { describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.ts';
import { generate, type TextTokenizer } from '../../src/engine/infer/generate.ts';
import type { LlamaRunner, Row } from '../../src/engine/infer/runner.ts';
import { fromBytes } from '../../src/engine/io/bytesource.ts';
import { readGgufHeader, type GgufFile, type GgufKV } from '../../src/engine/io/gguf.ts';
import { llamaConfigFromGguf } from '../../src/engine/io/gguf-llama.ts';
import { SpmTokenizer, spmTokenizerFromGguf, UNK_SURFACE, type SpmVocab } from '../../src/engine/io/spm.ts';
import type { LlamaConfig } from '../../src/engine/model/config.ts';
import { weightSizes, WEIGHT_NAMES, type LlamaWeightsF32 } from '../../src/engine/model/weights.ts';
import { llamaGgufMetadata, llamaGgufTensors, meta, writeGguf } from '../../tools/gguf-write.ts';
import { readSpmCases, readSpmVocab } from '../helpers/spm-fixture.ts';

const VOCAB = readSpmVocab();
const CASES = readSpmCases();
const V = VOCAB.pieces.length;
const id = (piece: string): number => {
  const i = VOCAB.pieces.indexOf(piece);
  if (i < 0) throw new Error(`no piece ${piece} in the fixture vocabulary`);
  return i;
};

/** tokenizer.ggml.* entries for the fixture vocabulary (as llama.cpp's converter writes them). */
function tokenizerMeta(over: Record<string, GgufKV | null> = {}): Map<string, GgufKV> {
  const m = new Map<string, GgufKV>([
    ['tokenizer.ggml.model', meta.string('llama')],
    ['tokenizer.ggml.tokens', meta.array('string', VOCAB.pieces)],
    ['tokenizer.ggml.scores', meta.array('f32', VOCAB.scores)],
    ['tokenizer.ggml.token_type', meta.array('i32', VOCAB.types)],
    ['tokenizer.ggml.bos_token_id', meta.u32(VOCAB.bos_id)],
    ['tokenizer.ggml.eos_token_id', meta.u32(VOCAB.eos_id)],
    ['tokenizer.ggml.unknown_token_id', meta.u32(VOCAB.unk_id)],
    ['tokenizer.ggml.add_bos_token', meta.bool(true)],
    ['tokenizer.ggml.add_eos_token', meta.bool(false)],
  ]);
  for (const [k, v] of Object.entries(over)) {
    if (v === null) m.delete(k);
    else m.set(k, v);
  }
  return m;
}

async function ggufOf(metadata: Map<string, GgufKV>, name = 'tok.gguf'): Promise<GgufFile> {
  return readGgufHeader(fromBytes(writeGguf({ version: 3, metadata, tensors: [] }), name));
}

const TINY: LlamaConfig = {
  dim: 8,
  hiddenDim: 16,
  nLayers: 1,
  nHeads: 2,
  nKvHeads: 1,
  vocabSize: V,
  maxSeqLen: 16,
  ropeTheta: 10000,
  normEps: 1e-5,
  sharedClassifier: true,
};

/** A whole tiny LLaMA GGUF (F32 weights 0.01·i) carrying the fixture tokenizer. */
async function modelFile(c: LlamaConfig): Promise<GgufFile> {
  const sizes = weightSizes(c);
  const w = Object.fromEntries(
    WEIGHT_NAMES.map((n) => [n, Float32Array.from({ length: sizes[n] }, (_, i) => ((i % 97) - 48) / 100)]),
  ) as unknown as LlamaWeightsF32;
  const metadata = llamaGgufMetadata(c, 'F32', { tokenizer: false });
  for (const [k, v] of tokenizerMeta()) metadata.set(k, v);
  const bytes = writeGguf({ version: 3, metadata, tensors: llamaGgufTensors(c, w, 'F32') });
  return readGgufHeader(fromBytes(bytes, 'tiny-llama.gguf'));
}

function expectThrow(f: () => unknown, code: string, message: RegExp): void {
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

/** Text from the stream decoder, token by token. */
function streamed(tok: SpmTokenizer, ids: readonly number[]): string {
  const d = tok.createStreamDecoder();
  let s = '';
  let prev = tok.bos;
  for (const id of ids) {
    s += d.push(prev, id);
    prev = id;
  }
  return s + d.flush();
}

describe('SentencePiece tokenizer from GGUF metadata vs sentencepiece (tests/fixtures/spm)', async () => {
  const file = await modelFile(TINY);
  const config = llamaConfigFromGguf(file);
  const tok = spmTokenizerFromGguf(file, config.vocabSize, 'tiny-llama.gguf');
  const asTextTokenizer: TextTokenizer = tok; // what generate() needs

  it('fixtures: sentencepiece 0.1.97, 500 pieces (256 byte pieces), ≥ 100 encode cases', () => {
    expect(VOCAB.sentencepiece).toBe('0.1.97');
    expect(V).toBe(500);
    expect(VOCAB.types.filter((t) => t === 6)).toHaveLength(256);
    expect(CASES.encode.length).toBeGreaterThanOrEqual(100);
    expect(CASES.decode.length).toBeGreaterThanOrEqual(20);
  });

  it('reads the vocabulary, special ids and flags from the metadata', () => {
    expect(asTextTokenizer.vocabSize).toBe(V);
    expect(config.vocabSize).toBe(V);
    expect([tok.bos, tok.eos, tok.unk, tok.pad]).toEqual([1, 2, 0, null]);
    expect([tok.addBos, tok.addEos, tok.addSpacePrefix]).toEqual([true, false, true]);
    expect(tok.name).toBe("tiny-llama.gguf's tokenizer");
    for (let i = 0; i < V; i++) {
      expect(tok.piece(i)).toBe(VOCAB.pieces[i]);
      expect(tok.score(i)).toBe(Math.fround(VOCAB.scores[i]!));
    }
    expect([0, 1, 2, 3, 4, 14, 259, id('es'), id('▁')].map((i) => tok.tokenType(i))).toEqual([
      'unknown',
      'control',
      'control',
      'userDefined',
      'byte',
      'byte',
      'byte',
      'normal',
      'normal',
    ]);
    expect(tok.piece(3)).toBe('<sep>');
    expect(tok.piece(14)).toBe('<0x0A>');
  });

  it.each(CASES.encode.map((c, i) => [i, JSON.stringify(c.text).slice(0, 60), c] as const))(
    'encode case %i %s: sentencepiece ids, decode gives its text',
    (_i, _label, c) => {
      expect(tok.encode(c.text, false, false)).toEqual(c.ids);
      expect(tok.encode(c.text, true, true)).toEqual([1, ...c.ids, 2]);
      expect(tok.decode(c.ids)).toBe(c.decoded);
      expect(tok.decode([tok.bos, ...c.ids, tok.eos])).toBe(c.decoded);
      expect(streamed(tok, c.ids)).toBe(c.decoded);
    },
  );

  it.each(CASES.decode.map((c, i) => [i, JSON.stringify(c.ids).slice(0, 60), c] as const))(
    'decode case %i %s: sentencepiece text',
    (_i, _label, c) => {
      expect(tok.decode(c.ids)).toBe(c.decoded);
      expect(streamed(tok, c.ids)).toBe(c.decoded);
    },
  );

  it('round trip: decode(encode(text)) is the text (identity normalization), except a literal "▁"', () => {
    const literal = CASES.encode.filter((c) => c.text.includes('▁'));
    expect(literal.map((c) => c.decoded)).toEqual([' ', '   literal metaspace', 'a b']);
    for (const c of CASES.encode) {
      if (!c.text.includes('▁')) expect(tok.decode(tok.encode(c.text, true, false))).toBe(c.text);
    }
  });

  it('the stream decoder holds a split character until its last byte, and emits it then', () => {
    // 😀 = F0 9F 98 80 as four byte tokens (see the fixture's "a😀b")
    const ids = tok.encode('a😀b', false, false);
    expect(ids.map((i) => tok.tokenType(i))).toEqual(['normal', 'byte', 'byte', 'byte', 'byte', 'normal']);
    const d = tok.createStreamDecoder();
    expect(ids.map((id) => d.push(-1, id))).toEqual(['a', '', '', '', '😀', 'b']);
    expect(d.flush()).toBe('');
  });

  it('decodeBytes: the piece with ▁ as a space, bytes as bytes, control tokens as nothing', () => {
    const hello = tok.encode('Hello', false, false);
    expect(new TextDecoder().decode(tok.decodeBytes(tok.bos, hello[0]!))).toBe(' H');
    expect(tok.decodeBytes(tok.bos, 14)).toEqual(Uint8Array.of(0x0a));
    expect(tok.decodeBytes(5, tok.eos)).toEqual(new Uint8Array(0));
    expect(new TextDecoder().decode(tok.decodeBytes(5, 0))).toBe(UNK_SURFACE);
    expect(new TextDecoder().decode(tok.decodeBytes(5, 3))).toBe('<sep>');
  });

  it('encodes a long text (about 90 kB) in well under 2 s and decodes it back', () => {
    const lines = CASES.encode.slice(30, 130).map((c) => c.text.replaceAll('▁', '_'));
    const long = Array.from({ length: 20 }, () => lines.join('\n')).join('\n');
    const t0 = performance.now();
    const ids = tok.encode(long, false, false);
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(tok.decode(ids)).toBe(long);
  });

  it('generate() prints what decode() gives, piece by piece (a scripted model picks the tokens)', async () => {
    const prompt = tok.encode('Q: café?', true, false);
    const answer = tok.encode('Zoë has 12 😀 \n日本語', false, false); // "▁Zoë ..."
    const script = [...answer, tok.eos];
    let step = 0;
    const runner = {
      slots: 1,
      maxT: 64,
      forward: (_rows: readonly Row[], outputs: readonly number[]) => {
        const logits = new Float32Array(outputs.length * V);
        logits[script[step++]!] = 1; // greedy picks the next scripted token
        return Promise.resolve(logits);
      },
    } as unknown as LlamaRunner<never>;
    const pieces: string[] = [];
    const r = await generate(runner, tok, [prompt], {
      steps: 64,
      temperature: 0,
      topp: 1,
      seed: 1,
      onToken: (_s, _t, text) => pieces.push(text),
    });
    expect(r.tokens[0]).toEqual([...prompt.slice(1), ...answer]);
    expect(r.texts[0]).toBe('Q: café? Zoë has 12 😀 \n日本語');
    expect(r.texts[0]).toBe(tok.decode(r.tokens[0]!));
    expect(pieces.join('')).toBe(r.texts[0]);
    expect(pieces).toContain('😀'); // its four byte tokens come out as one character
  });

  it('token ids outside the vocabulary are refused', () => {
    expectThrow(() => tok.decode([V]), 'BAD_ARGUMENT', /token 500 is outside the vocabulary .*0\.\.499/);
    expectThrow(() => tok.piece(-1), 'BAD_ARGUMENT', /outside the vocabulary/);
  });
});

describe('SentencePiece tokenizer: options and rules the fixture vocabulary does not reach', () => {
  it('add_space_prefix false: no "▁" before the text, and decode keeps a leading space', async () => {
    const on = spmTokenizerFromGguf(await ggufOf(tokenizerMeta()));
    const off = spmTokenizerFromGguf(
      await ggufOf(tokenizerMeta({ 'tokenizer.ggml.add_space_prefix': meta.bool(false) })),
    );
    expect(off.addSpacePrefix).toBe(false);
    for (const c of CASES.encode) {
      if (c.text === '') continue;
      expect(off.encode(' ' + c.text, false, false)).toEqual(c.ids);
    }
    expect(off.encode('a', false, false)).toEqual([id('a')]); // not "▁a"
    expect(on.encode('a', false, false)).toEqual([id('▁a')]);
    expect(off.decode([id('▁a')])).toBe(' a');
    expect(on.decode([id('▁a')])).toBe('a');
  });

  it('defaults like llama.cpp: BOS 1, EOS 2, unk 0, add BOS, no EOS, all scores 0 without scores', async () => {
    const tok = spmTokenizerFromGguf(
      await ggufOf(
        tokenizerMeta({
          'tokenizer.ggml.bos_token_id': null,
          'tokenizer.ggml.eos_token_id': null,
          'tokenizer.ggml.unknown_token_id': null,
          'tokenizer.ggml.add_bos_token': null,
          'tokenizer.ggml.add_eos_token': null,
          'tokenizer.ggml.scores': null,
        }),
      ),
    );
    expect([tok.bos, tok.eos, tok.unk, tok.pad, tok.addBos, tok.addEos]).toEqual([
      1,
      2,
      0,
      null,
      true,
      false,
    ]);
    expect(tok.score(300)).toBe(0);
  });

  it('reads i32 scores and a padding id', async () => {
    const tok = spmTokenizerFromGguf(
      await ggufOf(
        tokenizerMeta({
          'tokenizer.ggml.scores': meta.array('i32', VOCAB.scores.map(Math.round)),
          'tokenizer.ggml.padding_token_id': meta.u32(2),
        }),
      ),
    );
    expect(tok.pad).toBe(2);
    for (const c of CASES.encode.slice(0, 40)) expect(tok.encode(c.text, false, false)).toEqual(c.ids);
  });

  it('unused pieces (sentencepiece with some pieces marked UNUSED): its ids and text for every case', async () => {
    const unused = new Set(CASES.unused.ids);
    expect(CASES.unused.ids.map((i) => VOCAB.pieces[i])).toEqual([
      'es',
      'an',
      'oo',
      'houts',
      '▁h',
      'he',
      'ow',
      'ar',
      '▁t',
    ]);
    const types = VOCAB.types.map((t, i) => (unused.has(i) ? 5 : t));
    const tok = spmTokenizerFromGguf(
      await ggufOf(tokenizerMeta({ 'tokenizer.ggml.token_type': meta.array('i32', types) })),
    );
    expect(tok.tokenType(CASES.unused.ids[0]!)).toBe('unused');
    let differ = 0;
    CASES.unused.cases.forEach((c, i) => {
      if (i < CASES.unused.cases.length - 1) {
        expect(tok.encode(c.text, false, false)).toEqual(c.ids);
        expect(c.ids.some((id) => unused.has(id))).toBe(false);
        if (JSON.stringify(c.ids) !== JSON.stringify(CASES.encode[i]!.ids)) differ++;
      }
      expect(tok.decode(c.ids)).toBe(c.decoded); // the last case decodes the unused ids themselves
    });
    expect(differ).toBe(14);
  });

  it('user-defined pieces are matched first (longest) and never merged with their neighbours', () => {
    const tok = new SpmTokenizer({
      tokens: ['<unk>', '<s>', '</s>', '▁', 'a', '<x>', '<xy>', 'a<x>', '▁a'],
      scores: [0, 0, 0, -1, -2, 0, 0, 5, -3],
      types: [2, 3, 3, 1, 1, 4, 4, 1, 1],
    });
    expect(tok.encode('a<x>', false, false)).toEqual([8, 5]); // not "a<x>" (score 5)
    expect(tok.encode('<xy>a', false, false)).toEqual([3, 6, 4]);
    expect(tok.decode([8, 5])).toBe('a<x>');
  });

  // A hand-made vocabulary: the expected ids follow sentencepiece's bpe_model.cc rules.
  const small = (over: Partial<SpmVocab> = {}) =>
    new SpmTokenizer(
      {
        tokens: ['<unk>', '<s>', '</s>', '▁', 'a', 'b', 'x', 'ab', '▁ab', '日'],
        scores: [0, 0, 0, -5, -6, -7, -8, -1, -2, -9],
        types: [2, 3, 3, 1, 1, 1, 1, 5, 1, 1],
        ...over,
      },
      'small',
    );

  it('unused pieces merge but never come out: resegmented into the pieces they were made of', () => {
    const tok = small();
    expect(tok.encode('ab', false, false)).toEqual([8]); // ▁ + (a+b, unused) → ▁ab
    expect(tok.encode('xab', false, false)).toEqual([3, 6, 4, 5]); // "ab" unused → a, b
  });

  it('without byte tokens, unknown characters become the unknown token, one per run', () => {
    const tok = small();
    expect(tok.encode('a本本日本', false, false)).toEqual([3, 4, 0, 9, 0]);
    expect(tok.decode([3, 4, 0, 9, 0])).toBe(`a${UNK_SURFACE}日${UNK_SURFACE}`);
    const noUnk = small({ unk: null, types: [1, 3, 3, 1, 1, 1, 1, 5, 1, 1] });
    expectThrow(
      () => noUnk.encode('a本', false, false),
      'BAD_ARGUMENT',
      /neither byte tokens nor an unknown/,
    );
  });

  it('without token types every piece is normal (llama.cpp): byte pieces still encode, and print as text', () => {
    const tok = new SpmTokenizer({ tokens: ['<unk>', '<s>', '</s>', '▁', 'a', '<0x0A>'] });
    expect(tok.encode('a\n', false, false)).toEqual([3, 4, 5]);
    expect(tok.decode([4, 5])).toBe('a<0x0A>');
  });
});

describe('SentencePiece tokenizer: broken or foreign tokenizers are refused with a reason', () => {
  it('no tokenizer.ggml.tokens', async () => {
    const f = await ggufOf(tokenizerMeta({ 'tokenizer.ggml.tokens': null }), 'notok.gguf');
    expectThrow(() => spmTokenizerFromGguf(f), 'BAD_FILE', /notok\.gguf has no tokenizer\.ggml\.tokens/);
  });

  it('no tokenizer at all', async () => {
    const f = await ggufOf(new Map([['general.architecture', meta.string('llama')]]), 'bare.gguf');
    expectThrow(
      () => spmTokenizerFromGguf(f),
      'BAD_FILE',
      /bare\.gguf has no tokenizer \(no tokenizer\.ggml\.model/,
    );
  });

  it('scores of another length', async () => {
    const f = await ggufOf(
      tokenizerMeta({ 'tokenizer.ggml.scores': meta.array('f32', VOCAB.scores.slice(1)) }),
      'short.gguf',
    );
    expectThrow(
      () => spmTokenizerFromGguf(f),
      'BAD_FILE',
      /short\.gguf's tokenizer: 500 tokens but 499 scores/,
    );
  });

  it('token types of another length, of another array type, or out of range', async () => {
    const f1 = await ggufOf(tokenizerMeta({ 'tokenizer.ggml.token_type': meta.array('i32', [1, 1]) }));
    expectThrow(() => spmTokenizerFromGguf(f1), 'BAD_FILE', /500 tokens but 2 token types/);
    const f2 = await ggufOf(tokenizerMeta({ 'tokenizer.ggml.token_type': meta.array('u8', VOCAB.types) }));
    expectThrow(() => spmTokenizerFromGguf(f2), 'BAD_FILE', /token_type is an array of u8, expected i32/);
    const f3 = await ggufOf(
      tokenizerMeta({
        'tokenizer.ggml.token_type': meta.array(
          'i32',
          VOCAB.types.map((t, i) => (i === 7 ? 9 : t)),
        ),
      }),
    );
    expectThrow(
      () => spmTokenizerFromGguf(f3),
      'BAD_FILE',
      /token 7 .* has type 9; GGUF token types are 0–6/,
    );
  });

  it('unknown or unsupported tokenizer models, named', async () => {
    const gpt2 = await ggufOf(tokenizerMeta({ 'tokenizer.ggml.model': meta.string('gpt2') }), 'llama3.gguf');
    expectThrow(
      () => spmTokenizerFromGguf(gpt2),
      'BAD_FILE',
      /llama3\.gguf has a "gpt2" tokenizer \(a byte-level BPE .*Llama 3.*\); dust2gold reads SentencePiece tokenizers only/,
    );
    const odd = await ggufOf(tokenizerMeta({ 'tokenizer.ggml.model': meta.string('wordsoup') }));
    expectThrow(
      () => spmTokenizerFromGguf(odd),
      'BAD_FILE',
      /"wordsoup" tokenizer \(a tokenizer type dust2gold does not know\)/,
    );
    const num = await ggufOf(tokenizerMeta({ 'tokenizer.ggml.model': meta.u32(1) }));
    expectThrow(
      () => spmTokenizerFromGguf(num),
      'BAD_FILE',
      /tokenizer\.ggml\.model is a u32, expected a string/,
    );
  });

  it("a vocabulary whose size differs from the model's: VOCAB_MISMATCH", async () => {
    const f = await ggufOf(tokenizerMeta(), 'other.gguf');
    expectThrow(
      () => spmTokenizerFromGguf(f, 32000, 'llama-2-7b.Q4_0.gguf'),
      'VOCAB_MISMATCH',
      /other\.gguf's tokenizer has 500 tokens but llama-2-7b\.Q4_0\.gguf expects 32000: they belong to different models/,
    );
  });

  it('duplicate pieces, special ids outside the vocabulary, a non-bool flag', async () => {
    const dup = await ggufOf(
      tokenizerMeta({
        'tokenizer.ggml.tokens': meta.array(
          'string',
          VOCAB.pieces.map((p, i) => (i === 450 ? 'es' : p)),
        ),
      }),
    );
    expectThrow(
      () => spmTokenizerFromGguf(dup),
      'BAD_FILE',
      new RegExp(`the piece "es" appears twice in the vocabulary \\(tokens ${id('es')} and 450\\)`),
    );
    const bos = await ggufOf(tokenizerMeta({ 'tokenizer.ggml.bos_token_id': meta.u32(500) }));
    expectThrow(
      () => spmTokenizerFromGguf(bos),
      'BAD_FILE',
      /the BOS token id is 500, outside the vocabulary \(0–499\)/,
    );
    const flag = await ggufOf(tokenizerMeta({ 'tokenizer.ggml.add_bos_token': meta.u8(1) }));
    expectThrow(() => spmTokenizerFromGguf(flag), 'BAD_FILE', /add_bos_token is a u8, expected a bool/);
  });

  it('a byte token whose piece is not <0xXX>', () => {
    const tok = new SpmTokenizer({ tokens: ['<unk>', '<s>', '</s>', 'x'], types: [2, 3, 3, 6] }, 'odd');
    expectThrow(() => tok.decode([3]), 'BAD_FILE', /odd: token 3 is a byte token but its piece is "x"/);
  });
});
