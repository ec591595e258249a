/**
 * The SentencePiece fixtures in tests/fixtures/spm: vocab.json and cases.json hold sentencepiece's
 * pieces, ids and decoded texts for tokenizer.model (tools/make_spm_fixtures.py, sentencepiece
 * 0.1.97); tokenizer.json is that model converted by tools/spm_to_hf_json.py.
 */
import { readFileSync } from 'node:fs';

/** vocab.json: the trained model's vocabulary as sentencepiece reports it. */
export interface VocabFixture {
  sentencepiece: string;
  bos_id: number;
  eos_id: number;
  unk_id: number;
  pad_id: number;
  pieces: string[];
  scores: number[];
  types: number[];
}

/** cases.json: sentencepiece's ids and decoded texts. */
export interface Cases {
  encode: { text: string; ids: number[]; decoded: string }[];
  decode: { ids: number[]; decoded: string }[];
  unused: { ids: number[]; cases: { text: string; ids: number[]; decoded: string }[] };
}

/** The URL of tests/fixtures/spm/`name`. */
export const spmFixture = (name: string): URL => new URL(`../fixtures/spm/${name}`, import.meta.url);

export const readSpmVocab = (): VocabFixture =>
  JSON.parse(readFileSync(spmFixture('vocab.json'), 'utf8')) as VocabFixture;
export const readSpmCases = (): Cases => JSON.parse(readFileSync(spmFixture('cases.json'), 'utf8')) as Cases;
