/**
 * LLaMA-2-style tokenizers from Hugging Face's `tokenizer.json` (as transformers' LlamaConverter
 * writes it), into the `SpmVocab` that spm-files.ts builds from `tokenizer.model` and spm.ts from
 * GGUF metadata, and then an `SpmTokenizer`. See the "Tokenizers" section of docs/mlc.md.
 *
 * Facts from (read, no code copied): transformers' src/transformers/convert_slow_tokenizer.py
 * (LlamaConverter, SpmConverter, generate_merges) and the JSON layout of Hugging Face tokenizers
 * (model BPE, normalizers Prepend/Replace, pre-tokenizer Metaspace, decoders, TemplateProcessing).
 *
 * tokenizer.json → SpmVocab:
 *   - pieces by id: model.vocab (piece → id) plus added_tokens; ids must run 0..n−1 without holes.
 *   - types: the model's unk_token → unknown; an added token with special: true (and the BOS/EOS
 *     pieces) → control; an added token with special: false → user-defined (SentencePiece's
 *     USER_DEFINED pieces, which SpmConverter writes that way); `<0xXX>` → byte; the rest normal.
 *     A tokenizer.json cannot say "unused", so no piece is.
 *   - scores from merge ranks: a piece made by merges of rank r₁ < r₂ < … (all the "left right"
 *     entries whose concatenation is that piece) gets score −(1 + r₁); a piece no merge makes
 *     (characters, bytes, special pieces) gets 0.
 *   Why that reproduces BPE's rank order: SpmTokenizer repeatedly merges the adjacent pair whose
 *   concatenation has the highest score, leftmost on ties; BPE (tokenizers) repeatedly merges the
 *   adjacent pair with the lowest rank, leftmost on ties. LlamaConverter lists the merges of a piece
 *   together (every split of it into two vocabulary pieces, in one block) and orders the blocks by the
 *   piece's SentencePiece score, highest first. So for two pairs making different pieces p and q,
 *   rank(pair of p) < rank(pair of q) ⇔ r₁(p) < r₁(q) ⇔ score(p) > score(q): both choose the same
 *   pair. Two pairs making the same piece have the same score here; SpmTokenizer then takes the
 *   leftmost, as SentencePiece does (tokenizers would take the smaller rank, which differs only when
 *   two different splits of one piece overlap, e.g. "ab"+"a" and "a"+"ba" in "aba", where
 *   SentencePiece — the tokenizer the model was trained with — is the one we follow). And the pairs
 *   that can merge are the same: SpmTokenizer merges any two symbols whose concatenation is a piece,
 *   BPE only listed pairs, but the converter lists every split of a piece into two pieces. The only
 *   pieces no merge makes are the first three (<unk>, <s>, </s>, never mergeable), bytes, single
 *   characters (never the concatenation of two symbols) and, in files from a transformers version
 *   that dropped score-0 pieces, the first learned piece, whose SentencePiece score is the highest,
 *   0 — which is what it gets here. Both premises are checked, and a file that breaks them (a
 *   piece's merges not listed together, or a split of a merged piece into a character or mergeable
 *   piece and another that is not a listed merge: a BPE trained by tokenizers itself, or an edited
 *   file) is refused rather than tokenized differently. tests/unit/spm-files.test.ts checks the
 *   result against sentencepiece on every case.
 *   - normalizer Sequence [Prepend "▁", Replace " " → "▁"] (the "legacy" LLaMA layout) or the
 *     pre-tokenizer Metaspace (replacement "▁", prepend_scheme "first"/"always" = prefix, "never" =
 *     none): SentencePiece's add_dummy_prefix and whitespace escaping. Both are whole-text rules
 *     here, as in SentencePiece (tokenizers applies them per section between added tokens).
 *   - post_processor TemplateProcessing: a special token before $A = add BOS (that token is BOS), one
 *     after $A = add EOS; no post-processor: add BOS (LLaMA's default, which transformers'
 *     LlamaTokenizerFast and web-llm apply themselves). EOS is the template's, else "</s>".
 *   - decoder: Replace / ByteFallback / Fuse / Strip / Metaspace are what SpmTokenizer's decode does.
 *   Refused, by name: byte-level BPE (a ByteLevel pre-tokenizer or decoder: LLaMA 3, Qwen, GPT-2),
 *   WordPiece, Unigram, WordLevel, BPE without "▁" for spaces, and any other normalizer,
 *   pre-tokenizer or decoder (NFKC, Lowercase, Split, ...), which SpmTokenizer does not apply.
 *
 * @example
 *   const tok = spmTokenizerFromHfJson(await file.text(), 'tokenizer.json', config.vocabSize);
 *   tok.encode('Hello world', tok.addBos, tok.addEos); // [1, 15043, 3186] for LLaMA 2
 */
import { checkTokenizerVocab } from './chartok.ts';
import { bad, fmt, META, UTF8 } from './spm-files.ts';
import { SPM_TOKEN_TYPE, SpmTokenizer, type SpmVocab } from './spm.ts';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

const isObject = (x: Json | undefined): x is JsonObject =>
  typeof x === 'object' && x !== null && !Array.isArray(x);
const typeOf = (x: Json | undefined): string | undefined =>
  isObject(x) && typeof x['type'] === 'string' ? x['type'] : undefined;

const OTHER_HF_MODELS: Record<string, string> = {
  Unigram: 'a unigram tokenizer (SentencePiece unigram, as in T5)',
  WordPiece: 'a WordPiece tokenizer (BERT style)',
  WordLevel: 'a word-level tokenizer',
};
const WANT = 'dust2gold reads LLaMA-2-style SentencePiece tokenizers';

/** The components of a (possibly Sequence) normalizer / pre-tokenizer / decoder / post-processor. */
function parts(x: Json | undefined, listKey: string): JsonObject[] {
  if (x === null || x === undefined) return [];
  if (!isObject(x)) return [];
  if (x['type'] === 'Sequence' && Array.isArray(x[listKey])) {
    return (x[listKey] as Json[]).flatMap((y) => parts(y, listKey));
  }
  return [x];
}

function isMetaReplace(p: JsonObject, from: string, to: string): boolean {
  const pat = p['pattern'];
  return isObject(pat) && pat['String'] === from && p['content'] === to;
}

/**
 * The vocabulary of a Hugging Face tokenizer.json in the LLaMA (SentencePiece BPE) layout, mapped onto
 * SentencePiece's terms (see the file header: types from added_tokens, scores from merge ranks).
 * Throws BAD_FILE for malformed JSON, a vocabulary with missing or repeated ids, merges of unknown
 * pieces, and every other tokenizer layout (byte-level BPE, WordPiece, Unigram, ...), by name.
 */
export function spmVocabFromHfJson(json: string | Uint8Array, name = 'tokenizer.json'): SpmVocab {
  let text: string;
  if (typeof json === 'string') text = json;
  else {
    try {
      text = UTF8.decode(json);
    } catch {
      throw bad(
        name,
        'is not UTF-8 text, so it is no tokenizer.json: the file is damaged or of another kind.',
      );
    }
  }
  let root: Json;
  try {
    root = JSON.parse(text) as Json;
  } catch (e) {
    throw bad(
      name,
      `is not valid JSON (${(e as Error).message}): the file is damaged or cut short. Download it again.`,
    );
  }
  if (!isObject(root) || !isObject(root['model'])) {
    throw bad(
      name,
      'has no "model" object: this is not a Hugging Face tokenizer.json (the file written by the tokenizers library).',
    );
  }
  const model = root['model'];
  const kind = typeOf(model) ?? ('merges' in model ? 'BPE' : Array.isArray(model['vocab']) ? 'Unigram' : '?');
  const byteLevel = [
    ...parts(root['pre_tokenizer'], 'pretokenizers'),
    ...parts(root['decoder'], 'decoders'),
    ...parts(root['post_processor'], 'processors'),
  ].some((p) => p['type'] === 'ByteLevel');
  if (kind !== 'BPE') {
    const what = OTHER_HF_MODELS[kind] ?? `a "${kind}" tokenizer model, which dust2gold does not know`;
    throw bad(name, `this tokenizer.json is ${what}; ${WANT}: pick a LLaMA-2-family model.`);
  }
  if (byteLevel) {
    throw bad(
      name,
      `this tokenizer.json is byte-level BPE (as in LLaMA-3); ${WANT} (LLaMA 2, TinyLlama, Mistral, Vicuna, ...): pick such a model.`,
    );
  }
  if (model['ignore_merges'] === true) {
    throw bad(
      name,
      `this BPE tokenizer looks whole words up before merging (ignore_merges, as LLaMA-3's does); ${WANT}.`,
    );
  }
  for (const k of ['continuing_subword_prefix', 'end_of_word_suffix'] as const) {
    const x = model[k];
    if (typeof x === 'string' && x !== '') {
      throw bad(
        name,
        `this BPE tokenizer marks word pieces with ${k} ${JSON.stringify(x)} (GPT/BERT style); ${WANT}.`,
      );
    }
  }

  // spaces: normalizer [Prepend "▁", Replace " " → "▁"] or pre-tokenizer Metaspace
  let escape = false;
  let prefix = false;
  for (const p of parts(root['normalizer'], 'normalizers')) {
    if (p['type'] === 'Prepend' && p['prepend'] === META) prefix = true;
    else if (p['type'] === 'Replace' && isMetaReplace(p, ' ', META)) escape = true;
    else {
      throw bad(
        name,
        `the tokenizer's normalizer ${describe(p)} changes the text in a way SentencePiece's LLaMA tokenizer does not; ${WANT} (normalizer Prepend "▁" + Replace " " → "▁", or none).`,
      );
    }
  }
  for (const p of parts(root['pre_tokenizer'], 'pretokenizers')) {
    if (p['type'] === 'Metaspace' && (p['replacement'] ?? META) === META) {
      escape = true;
      const scheme = p['prepend_scheme'];
      prefix = typeof scheme === 'string' ? scheme !== 'never' : p['add_prefix_space'] !== false;
    } else {
      throw bad(
        name,
        `the tokenizer's pre-tokenizer ${describe(p)} splits or changes the text before BPE, which SentencePiece does not; ${WANT} (pre-tokenizer Metaspace or none).`,
      );
    }
  }
  if (!escape) {
    throw bad(
      name,
      `this BPE tokenizer does not write spaces as "▁" (no Replace " " → "▁" normalizer, no Metaspace pre-tokenizer); ${WANT}.`,
    );
  }
  for (const p of parts(root['decoder'], 'decoders')) {
    const t = p['type'];
    const ok =
      t === 'ByteFallback' ||
      t === 'Fuse' ||
      t === 'Strip' ||
      t === 'Metaspace' ||
      (t === 'Replace' && isMetaReplace(p, META, ' '));
    if (!ok) {
      throw bad(
        name,
        `the tokenizer's decoder ${describe(p)} is not SentencePiece's ("▁" → space, bytes joined); ${WANT}.`,
      );
    }
  }

  // pieces: model.vocab and added_tokens, ids 0..n-1
  const vocab = model['vocab'];
  if (!isObject(vocab)) {
    throw bad(name, 'model.vocab is not an object of piece → id: the file is damaged.');
  }
  const byId = new Map<number, string>();
  const ids = new Map<string, number>();
  const put = (piece: string, id: Json | undefined, where: string) => {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
      throw bad(
        name,
        `${where} gives ${JSON.stringify(piece)} the id ${JSON.stringify(id)}, not a token id (0, 1, 2, ...): the file is damaged.`,
      );
    }
    const other = byId.get(id);
    if (other !== undefined && other !== piece) {
      throw bad(
        name,
        `id ${id} belongs to two pieces, ${JSON.stringify(other)} and ${JSON.stringify(piece)} (${where}): the file is damaged or was edited by hand.`,
      );
    }
    const prev = ids.get(piece);
    if (prev !== undefined && prev !== id) {
      throw bad(
        name,
        `the piece ${JSON.stringify(piece)} has two ids, ${prev} and ${id} (${where}): the file is damaged or was edited by hand.`,
      );
    }
    byId.set(id, piece);
    ids.set(piece, id);
  };
  for (const [piece, id] of Object.entries(vocab)) put(piece, id, 'model.vocab');
  const control = new Set<number>();
  const userDefined = new Set<number>();
  const added = root['added_tokens'] ?? [];
  if (!Array.isArray(added)) throw bad(name, 'added_tokens is not a list: the file is damaged.');
  for (const a of added) {
    if (!isObject(a) || typeof a['content'] !== 'string') {
      throw bad(name, 'an entry of added_tokens has no "content" text: the file is damaged.');
    }
    put(a['content'], a['id'], 'added_tokens');
    (a['special'] === true ? control : userDefined).add(a['id'] as number);
  }
  const n = byId.size;
  if (n === 0) throw bad(name, 'the vocabulary is empty: the file has no usable tokenizer.');
  let maxId = 0;
  for (const id of byId.keys()) maxId = Math.max(maxId, id);
  if (maxId !== n - 1) {
    const missing: number[] = [];
    for (let i = 0; i <= maxId && missing.length < 5; i++) if (!byId.has(i)) missing.push(i);
    throw bad(
      name,
      `the vocabulary has ${fmt(n)} pieces but its ids run to ${fmt(maxId)}: ids ${missing.join(', ')}${maxId + 1 - n > missing.length ? ', ...' : ''} have no piece (every id from 0 to ${fmt(maxId)} needs one). The file is damaged or was edited by hand.`,
    );
  }
  const tokens = Array.from({ length: n }, (_, i) => byId.get(i)!);

  // special tokens: the template's BOS/EOS, else "<s>" / "</s>"
  let addBos = true;
  let addEos = false;
  let bosPiece = '<s>';
  let eosPiece = '</s>';
  const template = parts(root['post_processor'], 'processors').find(
    (p) => p['type'] === 'TemplateProcessing',
  );
  if (template) {
    const single = Array.isArray(template['single']) ? template['single'] : [];
    const special = (x: Json | undefined): string | undefined => {
      const s = isObject(x) ? x['SpecialToken'] : undefined;
      return isObject(s) && typeof s['id'] === 'string' ? s['id'] : undefined;
    };
    const first = special(single[0]);
    const last = single.length > 1 ? special(single[single.length - 1]) : undefined;
    addBos = first !== undefined;
    addEos = last !== undefined;
    const specials = isObject(template['special_tokens']) ? template['special_tokens'] : {};
    const pieceOf = (s: string): string => {
      const st = specials[s];
      const tk = isObject(st) && Array.isArray(st['tokens']) ? st['tokens'][0] : undefined;
      return typeof tk === 'string' ? tk : s;
    };
    if (first !== undefined) bosPiece = pieceOf(first);
    if (last !== undefined) eosPiece = pieceOf(last);
  }
  const specialId = (what: string, piece: string): number => {
    const id = ids.get(piece);
    if (id === undefined) {
      throw bad(
        name,
        `the vocabulary has no ${what} token ${JSON.stringify(piece)}: dust2gold needs LLaMA's BOS and EOS tokens to generate. ${WANT}.`,
      );
    }
    control.add(id);
    return id;
  };
  const bos = specialId('BOS', bosPiece);
  const eos = specialId('EOS', eosPiece);
  let unk: number | null = null;
  const unkToken = model['unk_token'];
  if (typeof unkToken === 'string') {
    const id = ids.get(unkToken);
    if (id === undefined) {
      throw bad(
        name,
        `model.unk_token is ${JSON.stringify(unkToken)}, which is not in the vocabulary: the file is damaged.`,
      );
    }
    unk = id;
  }
  const padding = root['padding'];
  const padId = isObject(padding) ? padding['pad_id'] : undefined;
  const pad = typeof padId === 'number' && Number.isInteger(padId) && padId >= 0 && padId < n ? padId : null;

  const types = tokens.map((p, i) =>
    i === unk
      ? SPM_TOKEN_TYPE.unknown
      : control.has(i)
        ? SPM_TOKEN_TYPE.control
        : userDefined.has(i)
          ? SPM_TOKEN_TYPE.userDefined
          : /^<0x[0-9A-F]{2}>$/.test(p)
            ? SPM_TOKEN_TYPE.byte
            : SPM_TOKEN_TYPE.normal,
  );

  // scores from merge ranks: the first merge that makes a piece gives it −(1 + rank)
  const merges = model['merges'] ?? [];
  if (!Array.isArray(merges)) throw bad(name, 'model.merges is not a list: the file is damaged.');
  const scores = new Float64Array(n);
  const scored = new Uint8Array(n);
  const listed = new Set<string>();
  const pairKey = (l: string, r: string) => `${l.length}:${l}${r}`;
  let block = -1; // the piece the previous merge made
  const ended = new Set<number>(); // pieces whose block of merges is over
  const notSpm = `this tokenizer.json was not converted from a SentencePiece model (or was edited), and dust2gold could not tokenize it exactly as the tokenizers library does; ${WANT}`;
  merges.forEach((m, rank) => {
    let pair: [string, string] | undefined;
    if (typeof m === 'string') {
      const s = m.split(' ');
      if (s.length === 2) pair = [s[0]!, s[1]!];
    } else if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') {
      pair = [m[0], m[1]];
    }
    if (!pair || pair[0] === '' || pair[1] === '') {
      throw bad(
        name,
        `merge ${fmt(rank)} is ${JSON.stringify(m)}, not "left right" or ["left", "right"]: the file is damaged.`,
      );
    }
    const merged = pair[0] + pair[1];
    for (const piece of [pair[0], pair[1], merged]) {
      if (!ids.has(piece)) {
        throw bad(
          name,
          `merge ${fmt(rank)} (${JSON.stringify(pair[0])} + ${JSON.stringify(pair[1])}) uses ${JSON.stringify(piece)}, which is not in the vocabulary: the file is damaged.`,
        );
      }
    }
    const id = ids.get(merged)!;
    listed.add(pairKey(pair[0], pair[1]));
    if (id !== block) {
      if (ended.has(id)) {
        throw bad(
          name,
          `the merges that make ${JSON.stringify(merged)} are not together (merge ${fmt(rank)} comes after merges of other pieces), so their order is no SentencePiece score order: ${notSpm}.`,
        );
      }
      ended.add(block);
      block = id;
    }
    if (!scored[id]) {
      scored[id] = 1;
      scores[id] = -(1 + rank);
    }
  });
  // SpmTokenizer merges any two symbols whose concatenation is a piece, BPE only the listed pairs:
  // the same when every split of a merged piece into two symbols (a character, or a piece merges
  // can make) is listed, as the converter lists them all
  const formable = (s: string, cps: number) =>
    cps === 1 || (ids.has(s) && types[ids.get(s)!] === SPM_TOKEN_TYPE.normal);
  for (let id = 0; id < n; id++) {
    if (!scored[id] || types[id] !== SPM_TOKEN_TYPE.normal) continue;
    const cps = Array.from(tokens[id]!);
    for (let k = 1; k < cps.length; k++) {
      const l = cps.slice(0, k).join('');
      const r = cps.slice(k).join('');
      if (formable(l, k) && formable(r, cps.length - k) && !listed.has(pairKey(l, r))) {
        throw bad(
          name,
          `${JSON.stringify(tokens[id])} is made by merges, but not from ${JSON.stringify(l)} + ${JSON.stringify(r)}, which SentencePiece would merge: ${notSpm}.`,
        );
      }
    }
  }

  return {
    tokens,
    scores,
    types,
    bos,
    eos,
    unk,
    pad,
    addBos,
    addEos,
    addSpacePrefix: prefix,
  };
}

function describe(p: JsonObject): string {
  const t = typeOf(p) ?? '(no type)';
  const s = JSON.stringify(p);
  return s.length <= 80 ? `"${t}" ${s}` : `"${t}"`;
}

/**
 * The SentencePiece tokenizer of a tokenizer.json in the LLaMA layout (spmVocabFromHfJson, then
 * SpmTokenizer). With `modelVocabSize`, checks that the model has one embedding row per token
 * (VOCAB_MISMATCH).
 */
export function spmTokenizerFromHfJson(
  json: string | Uint8Array,
  name = 'tokenizer.json',
  modelVocabSize?: number,
  modelName = 'the model',
): SpmTokenizer {
  const tok = new SpmTokenizer(spmVocabFromHfJson(json, name), name);
  if (modelVocabSize !== undefined) checkTokenizerVocab(tok.vocabSize, modelVocabSize, tok.name, modelName);
  return tok;
}
