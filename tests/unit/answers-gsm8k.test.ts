import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { answersEqual, extractAnswer, extractGold, isCorrect } from '../../src/method/answers/index.ts';

const fixture = <T>(name: string): T =>
  JSON.parse(readFileSync(new URL(`../fixtures/answers/${name}`, import.meta.url), 'utf8')) as T;

const cases = fixture<{
  extract: { text: string; answer: string | null }[];
  equal: { a: string; b: string; equal: boolean }[];
}>('gsm8k-cases.json');
const labeled =
  fixture<{ ground_truth: string; rationales: { model: string; is_correct: boolean; solution: string }[] }[]>(
    'gsm8k-labeled.json',
  );
const golds = fixture<{ answer: string; expected: string }[]>('gsm8k-gold.json');

describe('GSM8K extraction', () => {
  it.each(cases.extract.map((c) => [JSON.stringify(c.text).slice(0, 60), c] as const))('%s', (_n, c) => {
    expect(extractAnswer('gsm8k', c.text)).toBe(c.answer);
  });

  it('reads the gold after #### in real GSM8K test solutions', () => {
    expect(golds.length).toBe(60);
    for (const g of golds) expect(extractGold('gsm8k', g.answer)).toBe(g.expected);
    expect(extractGold('gsm8k', 'She makes 9 * 2 = $<<9*2=18>>18.\n#### 1,018')).toBe('1018');
    expect(extractGold('gsm8k', '#### ')).toBe(null);
    expect(extractGold('gsm8k', '42')).toBe('42');
  });
});

describe('GSM8K equivalence', () => {
  it.each(cases.equal.map((c) => [`${c.a} vs ${c.b}`, c] as const))('%s', (_n, c) => {
    expect(answersEqual('gsm8k', c.a, c.b)).toBe(c.equal);
    expect(answersEqual('gsm8k', c.b, c.a)).toBe(c.equal);
  });
});

describe('GSM8K real model rationales with correctness labels (openai/grade-school-math)', () => {
  it('our extraction + equivalence agrees with the labels', () => {
    let agree = 0;
    let total = 0;
    let positives = 0;
    for (const q of labeled)
      for (const r of q.rationales) {
        total++;
        if (r.is_correct) positives++;
        if (isCorrect('gsm8k', r.solution, q.ground_truth) === r.is_correct) agree++;
      }
    const rate = agree / total;
    console.log(`GSM8K label agreement: ${agree}/${total} = ${(100 * rate).toFixed(2)}%`);
    expect(total).toBe(400);
    expect(positives).toBe(147); // both classes are there: agreement is not "always false"
    expect(rate).toBeGreaterThanOrEqual(0.99);
  });
});
