import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { answersEqual, extractAnswer, extractGold, isCorrect } from '../../src/method/answers/index.ts';

const cases = JSON.parse(
  readFileSync(new URL('../fixtures/answers/arith-cases.json', import.meta.url), 'utf8'),
) as {
  extract: { text: string; answer: string | null }[];
  gold: { gold: string; answer: string | null }[];
  equal: { a: string; b: string; equal: boolean }[];
};

describe('arith (synthetic world) answers', () => {
  it.each(cases.extract.map((c) => [JSON.stringify(c.text), c] as const))('extract %s', (_n, c) => {
    expect(extractAnswer('arith', c.text)).toBe(c.answer);
  });

  it.each(cases.gold.map((c) => [JSON.stringify(c.gold), c] as const))('gold %s', (_n, c) => {
    expect(extractGold('arith', c.gold)).toBe(c.answer);
  });

  it.each(cases.equal.map((c) => [`${JSON.stringify(c.a)} vs ${JSON.stringify(c.b)}`, c] as const))(
    'equal %s',
    (_n, c) => {
      expect(answersEqual('arith', c.a, c.b)).toBe(c.equal);
      expect(answersEqual('arith', c.b, c.a)).toBe(c.equal);
    },
  );

  it('judges whole rationales (no last-number fallback)', () => {
    expect(isCorrect('arith', '12 + 3 = 15. 15 - 5 = 10. The answer is 10.', '10')).toBe(true);
    expect(isCorrect('arith', '12 + 3 = 15. 15 - 5 = 10. The answer is 11.', '10')).toBe(false);
    expect(isCorrect('arith', '12 + 3 = 15. 15 - 5 = 10.', '10')).toBe(false);
    expect(isCorrect('arith', 'The answer is 10.', 'The answer is 10.')).toBe(true);
  });
});
