/**
 * Training text (METHOD.md §0): `Problem:\n{x}\nSolution:\n{r}` then EOS. The loss is on the
 * rationale tokens and EOS (our default); `lossOnPrompt` also puts it on the question, as the
 * authors' code did.
 */
import type { Example } from '../../engine/train/trainer.ts';

export interface Tokenizer {
  readonly bos: number;
  readonly eos: number;
  readonly vocabSize: number;
  encode(text: string, bos: boolean, eos: boolean): number[];
}

export function promptOf(question: string): string {
  return `Problem:\n${question}\nSolution:\n`;
}

/** Tokens [BOS, prompt..., rationale..., EOS] with lossMask 1 on the rationale and EOS. */
export function encodeExample(
  tok: Tokenizer,
  question: string,
  rationale: string,
  opts: { lossOnPrompt?: boolean } = {},
): Example {
  const prompt = tok.encode(promptOf(question), true, false);
  const rest = tok.encode(rationale, false, true);
  const tokens = [...prompt, ...rest];
  const lossMask = tokens.map((_, t) => (t === 0 ? 0 : t >= prompt.length || opts.lossOnPrompt ? 1 : 0));
  return { tokens, lossMask };
}
