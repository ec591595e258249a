/**
 * Answer extraction and equivalence for the three answer kinds of METHOD.md §7. The one entry point
 * the method uses to split D_pos / D_neg and to group votes.
 *
 * @example
 *   extractAnswer('math', 'so the answer is $\\boxed{\\dfrac12}$.') === '\\dfrac12';
 *   answersEqual('math', '\\dfrac12', '0.5') === true;
 *   isCorrect('gsm8k', 'She makes 9 * 2 = $18.\nThe answer is 18.', 'She makes ...\n#### 18') === true;
 */
import { arithEqual, extractArith, extractArithGold } from './arith.ts';
import { extractGsm8k, extractGsm8kGold, gsm8kEqual } from './gsm8k.ts';
import { extractMath, extractMathGold, mathEqual } from './math.ts';

export type AnswerKind = 'math' | 'gsm8k' | 'arith';

export const ANSWER_KINDS: readonly AnswerKind[] = ['math', 'gsm8k', 'arith'];

export function isAnswerKind(s: string): s is AnswerKind {
  return (ANSWER_KINDS as readonly string[]).includes(s);
}

/** The answer in a model rationale, or null when it has none (the rationale is negative and abstains). */
export function extractAnswer(kind: AnswerKind, text: string): string | null {
  try {
    if (kind === 'math') return extractMath(text);
    if (kind === 'gsm8k') return extractGsm8k(text);
    return extractArith(text);
  } catch {
    return null;
  }
}

/**
 * The answer in a dataset's gold field: GSM8K `... #### n`; MATH a full solution with `\boxed{}` or a
 * bare answer; arith a bare integer or a rationale. Null when there is none.
 */
export function extractGold(kind: AnswerKind, gold: string): string | null {
  try {
    if (kind === 'math') return extractMathGold(gold);
    if (kind === 'gsm8k') return extractGsm8kGold(gold);
    return extractArithGold(gold);
  } catch {
    return null;
  }
}

/** Equivalence of two extracted answers. Never throws: a failure means "not equal". */
export function answersEqual(kind: AnswerKind, a: string, b: string): boolean {
  try {
    if (kind === 'math') return mathEqual(a, b);
    if (kind === 'gsm8k') return gsm8kEqual(a, b);
    return arithEqual(a, b);
  } catch {
    return false;
  }
}

/** Whether a rationale's answer matches the gold field (false when either has no answer). */
export function isCorrect(kind: AnswerKind, rationaleText: string, gold: string): boolean {
  const a = extractAnswer(kind, rationaleText);
  const g = extractGold(kind, gold);
  return a !== null && g !== null && answersEqual(kind, a, g);
}

export { lastBoxed, mathEqual } from './math.ts';
export { stripString, normalizeAnswer } from './normalize.ts';
