/**
 * Text formats of the world: the training text of METHOD.md §0 (`Problem:\n{x}\nSolution:\n{r}`),
 * the step-by-step chain (one equation per sentence, in the order of the sentences), the answer
 * extractor for "The answer is n.", and the fixed character list of the char tokenizer.
 *
 *   question: "Tom has 12 figs. He buys 3. He loses 5. How many figs does Tom have now?"
 *   chain:    "12, +3 = 15, -5 = 10. The answer is 10."      (style 'running', the default)
 *             "12 + 3 = 15. 15 - 5 = 10. The answer is 10."  (style 'equations')
 */
import { CharTokenizer } from '../../engine/io/chartok.ts';
import { promptOf } from '../stages/text.ts';
import type { Op, Problem } from './problems.ts';

/**
 * Every character any world text (problems, chains, corpus, the §0 wrapper) may contain. Ids are
 * 3 + the index here (0 PAD, 1 BOS, 2 EOS). Fixed: changing it changes the model's vocabulary.
 */
export const WORLD_CHARS = '\n !,.:?-+=×→0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

export function worldTokenizer(): CharTokenizer {
  return new CharTokenizer(WORLD_CHARS);
}

/** The prompt part of the §0 text: everything before the rationale (stages/text.ts's). */
export const promptText = promptOf;

/** The full §0 training text (EOS is added by the tokenizer, not here). */
export function trainingText(question: string, rationale: string): string {
  return promptOf(question) + rationale;
}

/** One chain step: "15 - 5 = 10." */
export function equation(a: number, op: Op, b: number, r: number): string {
  return `${a} ${op} ${b} = ${r}.`;
}

export function answerSentence(n: number): string {
  return `The answer is ${n}.`;
}

/**
 * How a chain is written:
 *   equations  "12 + 3 = 15. 15 - 5 = 10. The answer is 10."   one equation per step sentence
 *   running    "12, +3 = 15, -5 = 10. The answer is 10."       the start, then each step's signed
 *              quantity and the running amount (the pre-training's parse list with totals)
 */
export type ChainStyle = 'equations' | 'running';
export const CHAIN_STYLES: readonly ChainStyle[] = ['equations', 'running'];
/** The default: the style the built-in student learns in a few hundred LoRA steps (docs/world.md). */
export const DEFAULT_CHAIN_STYLE: ChainStyle = 'running';

/** One written step of a chain: a op n = r (a = the amount before it). */
export interface ChainStep {
  a: number;
  op: Op;
  n: number;
  r: number;
}

/** The text of a chain that starts from `start`, writes `steps` and answers `answer`. */
export function formatChain(
  start: number,
  steps: readonly ChainStep[],
  answer: number,
  style: ChainStyle = DEFAULT_CHAIN_STYLE,
): string {
  if (style === 'running')
    return `${[String(start), ...steps.map((s) => `${s.op}${s.n} = ${s.r}`)].join(', ')}. ${answerSentence(answer)}`;
  return [...steps.map((s) => equation(s.a, s.op, s.n, s.r)), answerSentence(answer)].join(' ');
}

/** The correct chain of a problem. */
export function correctChain(p: Problem, style: ChainStyle = DEFAULT_CHAIN_STYLE): string {
  const steps = p.steps.map((s, i) => ({ a: p.values[i]!, op: s.op, n: s.n, r: p.values[i + 1]! }));
  return formatChain(p.start, steps, p.answer, style);
}

/**
 * The answer of a rationale: the integer after the last "The answer is" (METHOD.md §7, small
 * synthetic tasks); null when there is none. Judged correct iff it equals the gold integer.
 */
export function extractAnswer(rationale: string): number | null {
  const re = /The answer is (-?\d+)/g;
  let last: string | undefined;
  for (let m = re.exec(rationale); m !== null; m = re.exec(rationale)) last = m[1];
  return last === undefined ? null : Number(last);
}

export function isCorrect(rationale: string, gold: number): boolean {
  return extractAnswer(rationale) === gold;
}
