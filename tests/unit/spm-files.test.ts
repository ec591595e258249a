// LLaMA-2-style tokenizers from tokenizer.model (src/engine/io/spm-files.ts) and tokenizer.json (spm-json.ts)
// against sentencepiece itself. tests/fixtures/spm/tokenizer.model is the model that
// tools/make_spm_fixtures.py trained (sentencepiece 0.1.97, LLaMA's options); tokenizer.json is
// that model converted by tools/spm_to_hf_json.py as transformers' LlamaConverter does; vocab.json and
// cases.json hold sentencepiece's pieces, ids and decoded texts. Bad files are crafted here with a
// small protobuf writer of the test's own.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.ts';
import {
  readSpmModelProto,
  spmTokenizerFromModelProto,
  spmVocabFromModelProto,
} from '../../src/engine/io/spm-files.ts';
import { spmTokenizerFromHfJson, spmVocabFromHfJson } from '../../src/engine/io/spm-json.ts';
import { SpmTokenizer } from '../../src/engine/io/spm.ts';
import { readSpmCases, readSpmVocab, spmFixture } from '../helpers/spm-fixture.ts';

const VOCAB = readSpmVocab();
const CASES = readSpmCases();
const MODEL = new Uint8Array(readFileSync(spmFixture('tokenizer.model')));
const JSON_TEXT = readFileSync(spmFixture('tokenizer.json'), 'utf8');
const V = VOCAB.pieces.length;
type HfJson = {
  added_tokens: { id: number; content: string; special: boolean }[];
  normalizer: unknown;
  pre_tokenizer: unknown;
  post_processor: unknown;
  decoder: unknown;
  model: { type: string; vocab: Record<string, number>; merges: (string | [string, string])[] } & Record<
    string,
    unknown
  >;
} & Record<string, unknown>;
/** A fresh copy of the fixture's tokenizer.json, to edit. */
const hf = (): HfJson => JSON.parse(JSON_TEXT) as HfJson;
const META_SPACE = { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false };

function expectThrow(f: () => unknown, code: string, message: RegExp): EngineError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(EngineError);
    expect((e as EngineError).code).toBe(code);
    expect((e as EngineError).message).toMatch(message);
    return e as EngineError;
  }
  throw new Error(`expected EngineError ${code} ${String(message)}`);
}

// --- a protobuf writer/editor of the test's own (varints, length-delimited fields)
function varint(v: bigint): number[] {
  let x = BigInt.asUintN(64, v);
  const out: number[] = [];
  do {
    const c = Number(x & 0x7fn);
    x >>= 7n;
    out.push(x ? c | 0x80 : c);
  } while (x);
  return out;
}
function readVarint(b: Uint8Array, i: number): [bigint, number] {
  let v = 0n;
  let s = 0n;
  for (;;) {
    const c = b[i++]!;
    v |= BigInt(c & 0x7f) << s;
    s += 7n;
    if (c < 0x80) return [v, i];
  }
}
interface Field {
  num: number;
  raw: Uint8Array;
  payload: Uint8Array | null;
}
function fields(b: Uint8Array): Field[] {
  const out: Field[] = [];
  for (let i = 0; i < b.length;) {
    const [key, j] = readVarint(b, i);
    const num = Number(key >> 3n);
    const wire = Number(key & 7n);
    let k: number;
    let payload: Uint8Array | null = null;
    if (wire === 0) k = readVarint(b, j)[1];
    else if (wire === 1) k = j + 8;
    else if (wire === 5) k = j + 4;
    else if (wire === 2) {
      const [n, j2] = readVarint(b, j);
      k = j2 + Number(n);
      payload = b.subarray(j2, k);
    } else throw new Error(`wire type ${wire}`);
    out.push({ num, raw: b.subarray(i, k), payload });
    i = k;
  }
  return out;
}
const cat = (parts: ArrayLike<number>[]) => Uint8Array.from(parts.flatMap((p) => Array.from(p)));
const lenField = (num: number, payload: ArrayLike<number>) =>
  cat([varint(BigInt((num << 3) | 2)), varint(BigInt(payload.length)), payload]);
const varintField = (num: number, v: number) => cat([varint(BigInt(num << 3)), varint(BigInt(v))]);
const strField = (num: number, s: string) => lenField(num, new TextEncoder().encode(s));
const floatField = (num: number, x: number) => {
  const f = new Uint8Array(4);
  new DataView(f.buffer).setFloat32(0, x, true);
  return cat([varint(BigInt((num << 3) | 5)), f]);
};
/** Replaces (or appends) varint fields of the top-level submessage `sub` (2 trainer_spec, 3 normalizer_spec). */
function withSpec(model: Uint8Array, sub: number, set: Record<number, number>, extra: Uint8Array[] = []) {
  return cat(
    fields(model).map((f) => {
      if (f.num !== sub) return f.raw;
      const kept = fields(f.payload!).filter((g) => !(g.num in set));
      const added = Object.entries(set).map(([k, v]) => varintField(Number(k), v));
      return lenField(sub, cat([...kept.map((g) => g.raw), ...added, ...extra]));
    }),
  );
}
/** Sets the type of the pieces with the given ids. */
function withTypes(model: Uint8Array, types: Map<number, number>): Uint8Array {
  let id = 0;
  return cat(
    fields(model).map((f) => {
      if (f.num !== 1) return f.raw;
      const t = types.get(id++);
      if (t === undefined) return f.raw;
      const kept = fields(f.payload!).filter((g) => g.num !== 3);
      return lenField(1, cat([...kept.map((g) => g.raw), varintField(3, t)]));
    }),
  );
}

/** Text from the stream decoder, token by token. */
function streamed(tok: SpmTokenizer, ids: readonly number[]): string {
  const d = tok.createStreamDecoder();
  let s = '';
  for (const id of ids) s += d.push(-1, id);
  return s + d.flush();
}

function checkAllCases(tok: SpmTokenizer): void {
  for (const c of CASES.encode) {
    const label = JSON.stringify(c.text).slice(0, 60);
    expect(tok.encode(c.text, false, false), label).toEqual(c.ids);
    expect(tok.encode(c.text, true, true), label).toEqual([1, ...c.ids, 2]);
    expect(tok.decode(c.ids), label).toBe(c.decoded);
    expect(streamed(tok, c.ids), label).toBe(c.decoded);
  }
  for (const c of CASES.decode) {
    const label = JSON.stringify(c.ids).slice(0, 60);
    expect(tok.decode(c.ids), label).toBe(c.decoded);
    expect(streamed(tok, c.ids), label).toBe(c.decoded);
  }
}

describe('tokenizer.model (SentencePiece ModelProto)', () => {
  it('fixture: the model sentencepiece trained, 500 pieces, ≥ 100 encode cases', () => {
    expect(MODEL.length).toBe(7481);
    expect(V).toBe(500);
    expect(CASES.encode.length).toBeGreaterThanOrEqual(100);
  });

  it('readSpmModelProto: every piece, score and type as sentencepiece reports them, and the specs', () => {
    const m = readSpmModelProto(MODEL);
    expect(m.pieces.map((p) => p.piece)).toEqual(VOCAB.pieces);
    expect(m.pieces.map((p) => p.score)).toEqual(VOCAB.scores);
    expect(m.pieces.map((p) => p.type)).toEqual(VOCAB.types);
    expect(m.trainer).toEqual({
      modelType: 2,
      vocabSize: 500,
      byteFallback: true,
      treatWhitespaceAsSuffix: false,
      unkId: 0,
      bosId: 1,
      eosId: 2,
      padId: -1, // a 10-byte varint in the file
      unkPiece: '<unk>',
      bosPiece: '<s>',
      eosPiece: '</s>',
      padPiece: '<pad>',
      unkSurface: ' ⁇ ',
    });
    expect(m.normalizer).toEqual({
      name: 'identity',
      precompiledCharsmapBytes: 0,
      addDummyPrefix: true,
      removeExtraWhitespaces: false,
      escapeWhitespaces: true,
    });
  });

  it('spmVocabFromModelProto: the SpmVocab that GGUF metadata gives (pieces, scores, types, ids, options)', () => {
    const v = spmVocabFromModelProto(MODEL);
    expect(v.tokens).toEqual(VOCAB.pieces);
    expect(Array.from(v.scores!)).toEqual(VOCAB.scores);
    expect(Array.from(v.types!)).toEqual(VOCAB.types);
    expect([v.bos, v.eos, v.unk, v.pad]).toEqual([VOCAB.bos_id, VOCAB.eos_id, VOCAB.unk_id, null]);
    expect([v.addBos, v.addEos, v.addSpacePrefix]).toEqual([true, false, true]);
    const tok = spmTokenizerFromModelProto(MODEL, 'tokenizer.model', V, 'tiny-llama');
    expect(tok.name).toBe('tokenizer.model');
    for (let i = 0; i < V; i++) expect(tok.score(i)).toBe(VOCAB.scores[i]);
    expect([tok.tokenType(0), tok.tokenType(1), tok.tokenType(3), tok.tokenType(4)]).toEqual([
      'unknown',
      'control',
      'userDefined',
      'byte',
    ]);
  });

  it('every encode and decode case: sentencepiece ids and text', () => {
    checkAllCases(spmTokenizerFromModelProto(MODEL));
  });

  it('unused pieces (the file with nine pieces typed UNUSED): sentencepiece ids and text for every case', () => {
    const unused = new Map(CASES.unused.ids.map((i) => [i, 5]));
    const bytes = withTypes(MODEL, unused);
    const typed = readSpmModelProto(bytes).pieces.flatMap((p, i) => (p.type === 5 ? [i] : []));
    expect(typed).toEqual([...CASES.unused.ids].sort((a, b) => a - b));
    expect(typed.map((i) => VOCAB.pieces[i])).toEqual([
      'es',
      'an',
      '▁h',
      'oo',
      '▁t',
      'ow',
      'he',
      'ar',
      'houts',
    ]);
    const tok = spmTokenizerFromModelProto(bytes);
    CASES.unused.cases.forEach((c, i) => {
      if (i < CASES.unused.cases.length - 1) expect(tok.encode(c.text, false, false), c.text).toEqual(c.ids);
      expect(tok.decode(c.ids)).toBe(c.decoded); // the last case decodes the unused ids themselves
    });
  });

  it('add_dummy_prefix false: no "▁" before the text', () => {
    const tok = spmTokenizerFromModelProto(withSpec(MODEL, 3, { 3: 0 }));
    expect(tok.addSpacePrefix).toBe(false);
    for (const c of CASES.encode.slice(1, 60)) expect(tok.encode(' ' + c.text, false, false)).toEqual(c.ids);
  });

  it('a tokenizer.model cut short anywhere is refused, saying so', () => {
    const offsets = [1, 2, 3, 10, 11, 17, 100, 1000, 5000, 7000];
    for (let i = MODEL.length - 400; i < MODEL.length; i++) offsets.push(i); // the specs are at the end
    for (const cut of offsets) {
      expectThrow(
        () => spmVocabFromModelProto(MODEL.subarray(0, cut), 'cut.model'),
        'BAD_FILE',
        /^cut\.model: .*(cut short|damaged)/,
      );
    }
    const e = expectThrow(() => readSpmModelProto(MODEL.subarray(0, 5000), 'cut.model'), 'BAD_FILE', /./);
    expect(e.message).toMatch(/piece \d+ ends in the middle of|the ModelProto ends in the middle of/);
    expect(e.message).toMatch(/byte [\d,]+ of 5,000.*cut short or damaged\. Download it again\./);
    // cut exactly after the last piece: a valid protobuf without the specs
    const pieces = cat(
      fields(MODEL)
        .filter((f) => f.num === 1)
        .map((f) => f.raw),
    );
    expectThrow(
      () => readSpmModelProto(pieces, 'cut.model'),
      'BAD_FILE',
      /500 pieces but no trainer_spec .*cut short or damaged/,
    );
  });

  it('model types other than BPE are refused by name', () => {
    expectThrow(
      () => spmVocabFromModelProto(withSpec(MODEL, 2, { 3: 1 }), 't5.model'),
      'BAD_FILE',
      /^t5\.model: this SentencePiece tokenizer is a unigram model \(as in T5, ALBERT, XLNet\), not BPE; dust2gold reads LLaMA-2-style SentencePiece BPE tokenizers/,
    );
    expectThrow(
      () => spmVocabFromModelProto(withSpec(MODEL, 2, { 3: 4 })),
      'BAD_FILE',
      /a character model \(model_type CHAR\), not BPE/,
    );
    expectThrow(
      () => spmVocabFromModelProto(withSpec(MODEL, 2, { 3: 9 })),
      'BAD_FILE',
      /model_type 9, unknown/,
    );
    // a hand-made unigram model: one piece, model_type left at its default (UNIGRAM)
    const tiny = cat([
      lenField(1, cat([strField(1, 'a'), floatField(2, -1)])),
      lenField(2, []),
      lenField(3, []),
    ]);
    expectThrow(() => spmVocabFromModelProto(tiny), 'BAD_FILE', /is a unigram model/);
  });

  it('normalizations SpmTokenizer does not apply are refused by name', () => {
    const nfkc = withSpec(MODEL, 3, {}, [strField(1, 'nmt_nfkc'), lenField(2, [1, 2, 3, 4])]);
    expectThrow(
      () => spmVocabFromModelProto(nfkc),
      'BAD_FILE',
      /normalizes text with the rule "nmt_nfkc" \(4 bytes of compiled rules, e\.g\. NFKC\), which dust2gold does not implement/,
    );
    expectThrow(
      () => spmVocabFromModelProto(withSpec(MODEL, 3, { 4: 1 })),
      'BAD_FILE',
      /removes extra whitespace \(normalizer_spec\.remove_extra_whitespaces\)/,
    );
    expectThrow(
      () => spmVocabFromModelProto(withSpec(MODEL, 3, { 5: 0 })),
      'BAD_FILE',
      /escape_whitespaces false/,
    );
    expectThrow(
      () => spmVocabFromModelProto(withSpec(MODEL, 2, { 24: 1 })),
      'BAD_FILE',
      /treat_whitespace_as_suffix/,
    );
    expectThrow(
      () => spmVocabFromModelProto(withSpec(MODEL, 2, { 41: -1 })),
      'BAD_FILE',
      /no BOS \(bos_id\)/,
    );
  });

  it('damaged or foreign files: bad piece type, JSON, GGUF, wrong wire type, bad UTF-8', () => {
    expectThrow(
      () => spmVocabFromModelProto(withTypes(MODEL, new Map([[298, 9]]))),
      'BAD_FILE',
      /piece 298 \("ay"\) has type 9; SentencePiece's types are 1–6/,
    );
    const jsonBytes = new TextEncoder().encode(JSON_TEXT);
    expectThrow(
      () => readSpmModelProto(jsonBytes, 'tokenizer.model'),
      'BAD_FILE',
      /not a SentencePiece tokenizer\.model \(it looks like JSON: is it tokenizer\.json\?\)/,
    );
    expectThrow(
      () => readSpmModelProto(new TextEncoder().encode('GGUF\x03\x00\x00\x00'), 'x.model'),
      'BAD_FILE',
      /\(it is a GGUF file\)/,
    );
    expectThrow(
      () => readSpmModelProto(new Uint8Array(0), 'empty.model'),
      'BAD_FILE',
      /no pieces \(0 bytes\)/,
    );
    expectThrow(
      () => readSpmModelProto(cat([lenField(1, varintField(1, 5))])),
      'BAD_FILE',
      /piece 0: its text \(field 1\) is stored as varint, not length-delimited/,
    );
    expectThrow(
      () => readSpmModelProto(cat([lenField(1, lenField(1, [0xff, 0xfe]))])),
      'BAD_FILE',
      /piece 0: its text at byte 2 is not valid UTF-8/,
    );
  });

  it('a model with another vocabulary size is VOCAB_MISMATCH', () => {
    expectThrow(
      () => spmTokenizerFromModelProto(MODEL, 'tokenizer.model', 32000, 'Llama-2-7b'),
      'VOCAB_MISMATCH',
      /tokenizer\.model has 500 tokens but Llama-2-7b expects 32000/,
    );
  });
});

describe('tokenizer.json (Hugging Face, LLaMA layout)', () => {
  const fromModel = spmVocabFromModelProto(MODEL);

  it("fixture: the converted file has LlamaConverter's layout", () => {
    const j = hf();
    expect(j.model.type).toBe('BPE');
    expect(j.model['byte_fallback']).toBe(true);
    expect(Object.keys(j.model.vocab)).toHaveLength(V);
    expect(j.model.merges.slice(0, 3)).toEqual(['e s', 'a n', 'e n']);
    expect(j.added_tokens.map((a) => [a.id, a.content, a.special])).toEqual([
      [0, '<unk>', true],
      [1, '<s>', true],
      [2, '</s>', true],
      [3, '<sep>', false],
    ]);
    expect(j.pre_tokenizer).toBeNull();
  });

  it("spmVocabFromHfJson: sentencepiece's pieces, types, special ids and options", () => {
    const v = spmVocabFromHfJson(JSON_TEXT);
    expect(v.tokens).toEqual(VOCAB.pieces);
    expect(Array.from(v.types!)).toEqual(VOCAB.types);
    expect([v.bos, v.eos, v.unk, v.pad]).toEqual([1, 2, 0, null]);
    expect([v.addBos, v.addEos, v.addSpacePrefix]).toEqual([true, false, true]);
    // bytes in, the same out
    expect(spmVocabFromHfJson(new TextEncoder().encode(JSON_TEXT))).toEqual(v);
  });

  it("scores from merge ranks order the pieces merges make exactly as sentencepiece's scores do", () => {
    const v = spmVocabFromHfJson(JSON_TEXT);
    const scores = Array.from(v.scores!);
    const merged = new Set(hf().model.merges.map((m) => (m as string).replace(' ', '')));
    const made = VOCAB.pieces.map((p, i) => (merged.has(p) ? i : -1)).filter((i) => i >= 0);
    expect(made).toHaveLength(137); // every normal piece of two or more characters
    expect(VOCAB.pieces.filter((p, i) => VOCAB.types[i] === 1 && [...p].length > 1)).toHaveLength(137);
    const byHf = [...made].sort((a, b) => scores[b]! - scores[a]!);
    const bySpm = [...made].sort((a, b) => VOCAB.scores[b]! - VOCAB.scores[a]!);
    expect(byHf).toEqual(bySpm);
    expect(scores[made[0]!]).toBe(-1); // "es", made by merge 0
    expect(new Set(made.map((i) => scores[i])).size).toBe(137); // no two pieces tie
    VOCAB.pieces.forEach((_, i) => {
      if (!merged.has(VOCAB.pieces[i]!)) expect(scores[i]).toBe(0);
    });
  });

  it('every encode and decode case: sentencepiece ids and text', () => {
    checkAllCases(spmTokenizerFromHfJson(JSON_TEXT));
  });

  it('the same with merges as ["a", "b"] pairs (tokenizers ≥ 0.20)', () => {
    const j = hf();
    j.model.merges = j.model.merges.map((m) => (m as string).split(' ') as [string, string]);
    const v = spmVocabFromHfJson(JSON.stringify(j));
    expect(v).toEqual(spmVocabFromHfJson(JSON_TEXT));
  });

  it('the same with the Metaspace pre-tokenizer layout (legacy: false), and prefix options', () => {
    const j = hf();
    j.normalizer = null;
    j.pre_tokenizer = META_SPACE;
    const tok = spmTokenizerFromHfJson(JSON.stringify(j));
    expect(tok.addSpacePrefix).toBe(true);
    checkAllCases(tok);
    j.pre_tokenizer = { ...META_SPACE, prepend_scheme: 'never' };
    expect(spmVocabFromHfJson(JSON.stringify(j)).addSpacePrefix).toBe(false);
    j.pre_tokenizer = { type: 'Metaspace', replacement: '▁', add_prefix_space: true }; // tokenizers < 0.19
    expect(spmVocabFromHfJson(JSON.stringify(j)).addSpacePrefix).toBe(true);
    j.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ ...META_SPACE, prepend_scheme: 'always' }] };
    expect(spmVocabFromHfJson(JSON.stringify(j)).addSpacePrefix).toBe(true);
    // legacy layout without Prepend (add_prefix_space false)
    const k = hf();
    k.normalizer = {
      type: 'Sequence',
      normalizers: [{ type: 'Replace', pattern: { String: ' ' }, content: '▁' }],
    };
    const off = spmTokenizerFromHfJson(JSON.stringify(k));
    expect(off.addSpacePrefix).toBe(false);
    for (const c of CASES.encode.slice(1, 60)) expect(off.encode(' ' + c.text, false, false)).toEqual(c.ids);
  });

  it("a file without the first piece's merges (transformers once dropped score-0 pieces) still encodes as sentencepiece", () => {
    const j = hf();
    j.model.merges = j.model.merges.filter((m) => m !== 'e s'); // "es": score -0 in tokenizer.model
    const v = spmVocabFromHfJson(JSON.stringify(j));
    expect(v.scores![260]).toBe(0); // above every merge (−1, −2, ...), as its sentencepiece score
    checkAllCases(new SpmTokenizer(v));
  });

  it('merge tables that are no SentencePiece score order are refused, not tokenized differently', () => {
    const j = hf();
    const i = j.model.merges.indexOf('▁ an');
    expect(j.model.merges[i - 1]).toBe('▁a n'); // "▁an" has two merges, 6 and 7
    j.model.merges.push(...j.model.merges.splice(i, 1)); // one of them last
    expectThrow(
      () => spmVocabFromHfJson(JSON.stringify(j)),
      'BAD_FILE',
      /the merges that make "▁an" are not together \(merge 138 comes after merges of other pieces\), so their order is no SentencePiece score order: this tokenizer\.json was not converted from a SentencePiece model/,
    );
    const k = hf();
    k.model.merges = k.model.merges.filter((m) => m !== '▁a n'); // as a BPE trained by tokenizers lists one
    expectThrow(
      () => spmVocabFromHfJson(JSON.stringify(k)),
      'BAD_FILE',
      /"▁an" is made by merges, but not from "▁a" \+ "n", which SentencePiece would merge: this tokenizer\.json was not converted/,
    );
  });

  it('BOS/EOS from the post-processor: "<s> $A </s>" adds EOS, none at all adds BOS', () => {
    const j = hf();
    const tp = j.post_processor as { single: unknown[] };
    tp.single.push({ SpecialToken: { id: '</s>', type_id: 0 } });
    expect(spmVocabFromHfJson(JSON.stringify(j))).toMatchObject({
      addBos: true,
      addEos: true,
      bos: 1,
      eos: 2,
    });
    tp.single = [{ Sequence: { id: 'A', type_id: 0 } }];
    expect(spmVocabFromHfJson(JSON.stringify(j))).toMatchObject({ addBos: false, addEos: false });
    j.post_processor = null;
    expect(spmVocabFromHfJson(JSON.stringify(j))).toMatchObject({ addBos: true, addEos: false });
  });

  it('the two readers give the same vocabulary apart from scores', () => {
    const v = spmVocabFromHfJson(JSON_TEXT);
    expect({ ...v, scores: null }).toEqual({ ...fromModel, scores: null });
  });

  it('a byte-level BPE tokenizer.json (LLaMA 3, Qwen, GPT-2) is refused with the reason', () => {
    const llama3 = {
      version: '1.0',
      added_tokens: [{ id: 3, content: '<|begin_of_text|>', special: true }],
      normalizer: null,
      pre_tokenizer: {
        type: 'Sequence',
        pretokenizers: [
          { type: 'Split', pattern: { Regex: "(?i:'s|'t)" }, behavior: 'Isolated', invert: false },
          { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
        ],
      },
      post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: { type: 'BPE', vocab: { a: 0, b: 1, ab: 2 }, merges: [['a', 'b']], byte_fallback: false },
    };
    expectThrow(
      () => spmVocabFromHfJson(JSON.stringify(llama3), 'Llama-3/tokenizer.json'),
      'BAD_FILE',
      /^Llama-3\/tokenizer\.json: this tokenizer\.json is byte-level BPE \(as in LLaMA-3\); dust2gold reads LLaMA-2-style SentencePiece tokenizers/,
    );
    const gpt2 = {
      ...llama3,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false },
      post_processor: null,
    };
    expectThrow(() => spmVocabFromHfJson(JSON.stringify(gpt2)), 'BAD_FILE', /is byte-level BPE/);
  });

  it('WordPiece, Unigram and unknown models are refused by name', () => {
    const wp = { model: { type: 'WordPiece', vocab: { '[UNK]': 0 }, unk_token: '[UNK]' } };
    expectThrow(
      () => spmVocabFromHfJson(JSON.stringify(wp)),
      'BAD_FILE',
      /a WordPiece tokenizer \(BERT style\)/,
    );
    const uni = { model: { type: 'Unigram', vocab: [['<unk>', 0]], unk_id: 0 } };
    expectThrow(
      () => spmVocabFromHfJson(JSON.stringify(uni)),
      'BAD_FILE',
      /a unigram tokenizer \(SentencePiece unigram/,
    );
    const untyped = { model: { vocab: [['<unk>', 0]] } }; // very old files wrote no "type"
    expectThrow(() => spmVocabFromHfJson(JSON.stringify(untyped)), 'BAD_FILE', /a unigram tokenizer/);
    const odd = { model: { type: 'Tiktoken' } };
    expectThrow(() => spmVocabFromHfJson(JSON.stringify(odd)), 'BAD_FILE', /a "Tiktoken" tokenizer model/);
  });

  it('normalizers, pre-tokenizers and decoders SpmTokenizer does not apply are refused by name', () => {
    const j = hf();
    j.normalizer = { type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'Prepend', prepend: '▁' }] };
    expectThrow(
      () => spmVocabFromHfJson(JSON.stringify(j)),
      'BAD_FILE',
      /normalizer "NFKC" \{"type":"NFKC"\} changes/,
    );
    const k = hf();
    k.normalizer = null;
    expectThrow(
      () => spmVocabFromHfJson(JSON.stringify(k)),
      'BAD_FILE',
      /does not write spaces as "▁" \(no Replace " " → "▁" normalizer, no Metaspace pre-tokenizer\)/,
    );
    k.pre_tokenizer = { type: 'Whitespace' };
    expectThrow(
      () => spmVocabFromHfJson(JSON.stringify(k)),
      'BAD_FILE',
      /pre-tokenizer "Whitespace" .*splits/,
    );
    const d = hf();
    d.decoder = { type: 'WordPiece', prefix: '##', cleanup: true };
    expectThrow(() => spmVocabFromHfJson(JSON.stringify(d)), 'BAD_FILE', /decoder "WordPiece"/);
    const im = hf();
    im.model['ignore_merges'] = true;
    expectThrow(
      () => spmVocabFromHfJson(JSON.stringify(im)),
      'BAD_FILE',
      /looks whole words up before merging/,
    );
    const s = hf();
    s.model['continuing_subword_prefix'] = '##';
    expectThrow(() => spmVocabFromHfJson(JSON.stringify(s)), 'BAD_FILE', /continuing_subword_prefix "##"/);
  });

  it('malformed JSON, a vocabulary with holes or clashes, bad merges: BAD_FILE with the reason', () => {
    expectThrow(
      () => spmVocabFromHfJson(JSON_TEXT.slice(0, 5000), 'cut/tokenizer.json'),
      'BAD_FILE',
      /^cut\/tokenizer\.json: is not valid JSON \(.*\): the file is damaged or cut short\. Download it again\./,
    );
    expectThrow(() => spmVocabFromHfJson(Uint8Array.of(0x7b, 0xff, 0x7d)), 'BAD_FILE', /is not UTF-8 text/);
    expectThrow(() => spmVocabFromHfJson('[1, 2]'), 'BAD_FILE', /has no "model" object/);
    const holes = hf();
    delete holes.model.vocab[VOCAB.pieces[300]!];
    delete holes.model.vocab[VOCAB.pieces[310]!];
    expectThrow(
      () => spmVocabFromHfJson(JSON.stringify(holes)),
      'BAD_FILE',
      /the vocabulary has 498 pieces but its ids run to 499: ids 300, 310 have no piece \(every id from 0 to 499 needs one\)/,
    );
    const twice = hf();
    twice.model.vocab['ay'] = 301; // "ay" is 298
    expectThrow(
      () => spmVocabFromHfJson(JSON.stringify(twice)),
      'BAD_FILE',
      /id 301 belongs to two pieces, "ay" and/,
    );
    const clash = hf();
    clash.added_tokens.push({ id: 7, content: '<s>', special: true });
    expectThrow(
      () => spmVocabFromHfJson(JSON.stringify(clash)),
      'BAD_FILE',
      /id 7 belongs to two pieces|two ids, 1 and 7/,
    );
    const negative = hf();
    negative.model.vocab['ay'] = -3;
    expectThrow(
      () => spmVocabFromHfJson(JSON.stringify(negative)),
      'BAD_FILE',
      /gives "ay" the id -3, not a token id/,
    );
    const merge = hf();
    merge.model.merges.push('x yz');
    expectThrow(
      () => spmVocabFromHfJson(JSON.stringify(merge)),
      'BAD_FILE',
      /merge 139 \("x" \+ "yz"\) uses "yz", which is not in the vocabulary/,
    );
    merge.model.merges[139] = 'a b c';
    expectThrow(
      () => spmVocabFromHfJson(JSON.stringify(merge)),
      'BAD_FILE',
      /merge 139 is "a b c", not "left right"/,
    );
    const noEos = hf();
    noEos.model.vocab['</ss>'] = 2;
    delete noEos.model.vocab['</s>'];
    noEos.added_tokens = noEos.added_tokens.filter((a) => a.id !== 2);
    expectThrow(() => spmVocabFromHfJson(JSON.stringify(noEos)), 'BAD_FILE', /no EOS token "<\/s>"/);
    const unk = hf();
    unk.model['unk_token'] = '<unknown>';
    expectThrow(
      () => spmVocabFromHfJson(JSON.stringify(unk)),
      'BAD_FILE',
      /unk_token is "<unknown>", which is not/,
    );
    expectThrow(
      () => spmTokenizerFromHfJson(JSON_TEXT, 'tokenizer.json', 32000, 'Llama-2-7b'),
      'VOCAB_MISMATCH',
      /tokenizer\.json has 500 tokens but Llama-2-7b expects 32000/,
    );
  });
});
