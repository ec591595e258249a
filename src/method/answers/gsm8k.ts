/**
 * GSM8K answers (METHOD.md §7): the gold is the number after `####`; a model's answer is the first
 * number after the last "The answer is" (any case), else the last number in the text. Commas, `$`,
 * `%` and a final period are dropped; answers compare as exact decimals (`18.00` ≡ `18`).
 *
 * @example
 *   extractGsm8k('So she makes $18. The answer is 18.') === '18';
 *   extractGsm8kGold('9 * 2 = <<9*2=18>>18\n#### 18') === '18';
 *   gsm8kEqual('18.00', '18') === true;
 */
import { plainNumber, rationalsEqual } from './numbers.ts';

/** A number as people write it: optional minus (not after a digit or letter), thousands commas, decimals. */
const NUMBER = /(?<![\w.])-?(?:\d(?:\d|,(?=\d{3}(?!\d)))*(?:\.\d+)?|\.\d+)/g;

function numbersIn(text: string): string[] {
  return [...text.matchAll(NUMBER)].map((m) => m[0].replace(/,/g, ''));
}

/** The model's answer in a GSM8K rationale, as a plain decimal string; null when it has no number. */
export function extractGsm8k(text: string): string | null {
  const lower = text.toLowerCase();
  const at = lower.lastIndexOf('the answer is');
  if (at >= 0) {
    const after = numbersIn(text.slice(at + 'the answer is'.length));
    if (after.length > 0) return after[0]!;
  }
  const all = numbersIn(text);
  return all.length > 0 ? all[all.length - 1]! : null;
}

/** The gold of a GSM8K record: the number after the last `####`; a bare number; else as extractGsm8k. */
export function extractGsm8kGold(gold: string): string | null {
  const at = gold.lastIndexOf('####');
  if (at >= 0) return numbersIn(gold.slice(at + 4))[0] ?? null;
  return extractGsm8k(gold);
}

/** Numeric equality of two GSM8K answers (exact decimals after dropping `,`, `$`, `%`, a final `.`). */
export function gsm8kEqual(a: string, b: string): boolean {
  const x = plainNumber(a);
  const y = plainNumber(b);
  return x !== null && y !== null && rationalsEqual(x, y);
}
