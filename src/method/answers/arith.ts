/**
 * Answers of our synthetic arithmetic world (METHOD.md §7): the integer in the last
 * "The answer is <n>" of a rationale. No last-number fallback: the synthetic teacher always writes the
 * sentence, so a chain without it abstains. "The answer is 3.5" or "The answer is 1,000" is no
 * integer answer (null), not 3 or 1.
 *
 * @example
 *   extractArith('12 + 3 = 15. The answer is 15.') === '15';
 *   arithEqual('-0', '0') === true;
 */

const SENTENCE = /The answer is (-?\d+)(?![\d]|[.,]\d)/g;
const INTEGER = /^\s*(-?\d+)\s*$/;

/** Longest integer we read (a model looping on digits must not cost a huge BigInt). */
const MAX_DIGITS = 64;

export function extractArith(text: string): string | null {
  let last: string | null = null;
  for (const m of text.matchAll(SENTENCE)) last = m[1]!;
  return last !== null && last.length <= MAX_DIGITS + 1 ? last : null;
}

/** The gold: a bare integer, or a rationale with the answer sentence. */
export function extractArithGold(gold: string): string | null {
  const m = INTEGER.exec(gold);
  if (m) return m[1]!.length <= MAX_DIGITS + 1 ? m[1]! : null;
  return extractArith(gold);
}

/** Integer equality (`007` ≡ `7`, `-0` ≡ `0`); false when either is not an integer. */
export function arithEqual(a: string, b: string): boolean {
  const x = INTEGER.exec(a);
  const y = INTEGER.exec(b);
  if (!x || !y || x[1]!.length > MAX_DIGITS + 1 || y[1]!.length > MAX_DIGITS + 1) return false;
  return BigInt(x[1]!) === BigInt(y[1]!);
}
