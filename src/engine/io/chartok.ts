/**
 * A character-level tokenizer for small synthetic tasks (the built-in math student's world).
 * Ids: 0 = PAD, 1 = BOS, 2 = EOS (llama2.c's BOS/EOS ids), then the characters in the order given,
 * from 3. A character is a Unicode code point.
 *
 * @example
 *   const tok = new CharTokenizer('0123456789+= ');
 *   tok.encode('1+2=3', true, true); // [1, 4, 13, 5, 14, 6, 2]
 *   tok.decode([1, 4, 13, 5, 2]);    // '1+2' (special tokens print nothing)
 */
import { EngineError } from '../errors.ts';
import type { StreamDecoder } from './tokenizer.ts';

export interface CharTokenizerJSON {
  type: 'char';
  chars: string;
}

export class CharTokenizer {
  readonly pad = 0;
  readonly bos = 1;
  readonly eos = 2;
  readonly vocabSize: number;
  readonly chars: string;
  private readonly byChar = new Map<string, number>();
  private readonly byId: string[];

  constructor(chars: string) {
    this.chars = chars;
    this.byId = Array.from(chars);
    this.byId.forEach((c, i) => {
      if (this.byChar.has(c))
        throw new EngineError(
          'BAD_ARGUMENT',
          `CharTokenizer: ${JSON.stringify(c)} appears twice in the character list: list each character once.`,
        );
      this.byChar.set(c, i + 3);
    });
    this.vocabSize = this.byId.length + 3;
  }

  encode(text: string, bos: boolean, eos: boolean): number[] {
    const ids: number[] = bos ? [this.bos] : [];
    for (const c of text) {
      const id = this.byChar.get(c);
      if (id === undefined)
        throw new EngineError(
          'BAD_ARGUMENT',
          `CharTokenizer: ${JSON.stringify(c)} is not in the vocabulary ${JSON.stringify(this.chars)}: remove it from the text or add it to the character list.`,
        );
      ids.push(id);
    }
    if (eos) ids.push(this.eos);
    return ids;
  }

  /** The text of ids; PAD, BOS and EOS print nothing. */
  decode(ids: readonly number[]): string {
    let s = '';
    for (const id of ids) {
      if (id < 3) continue;
      const c = this.byId[id - 3];
      if (c === undefined)
        throw new EngineError(
          'BAD_ARGUMENT',
          `CharTokenizer: token ${id} is outside the vocabulary (0..${this.vocabSize - 1}).`,
        );
      s += c;
    }
    return s;
  }

  /** One token's text as UTF-8 bytes (special tokens: none). `prev` is unused (no BPE spaces). */
  decodeBytes(_prev: number, token: number): Uint8Array {
    return new TextEncoder().encode(this.decode([token]));
  }

  /** A stream decoder for generation: each token is whole characters already. */
  createStreamDecoder(): StreamDecoder {
    return { push: (_prev, token) => this.decode([token]), flush: () => '' };
  }

  toJSON(): CharTokenizerJSON {
    return { type: 'char', chars: this.chars };
  }

  static fromJSON(j: unknown): CharTokenizer {
    const o = j as Partial<CharTokenizerJSON> | null;
    if (!o || o.type !== 'char' || typeof o.chars !== 'string') {
      throw new EngineError(
        'BAD_FILE',
        'CharTokenizer.fromJSON: expected {"type": "char", "chars": "..."}: the tokenizer file is not a character tokenizer.',
      );
    }
    return new CharTokenizer(o.chars);
  }
}

/** A tokenizer and a model belong together when their vocabularies have the same size. */
export function checkTokenizerVocab(
  tokenizerVocab: number,
  modelVocab: number,
  tokenizerName: string,
  modelName: string,
): void {
  if (tokenizerVocab !== modelVocab)
    throw new EngineError(
      'VOCAB_MISMATCH',
      `${tokenizerName} has ${tokenizerVocab} tokens but ${modelName} expects ${modelVocab}: they belong to different models. Use the tokenizer saved with this model.`,
    );
}
