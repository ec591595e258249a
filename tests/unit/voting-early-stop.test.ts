import { describe, expect, it } from 'vitest';
import {
  earlyStop,
  incompleteBeta,
  stopProbability,
  vote,
  type VoteSample,
} from '../../src/method/voting/index.ts';

const same = (a: string, b: string) => a === b;
const s = (answer: string | null, score?: number): VoteSample =>
  score === undefined ? { answer } : { answer, score };

/** P[Binomial(n, 1/2) ≤ a], summed with BigInt, written independently of the module. */
function binomialCdfHalf(a: number, n: number): number {
  let c = 1n;
  let sum = 0n;
  for (let k = 0; k <= a; k++) {
    sum += c;
    c = (c * BigInt(n - k)) / BigInt(k + 1);
  }
  return Number(sum) / 2 ** n;
}

/** P[X > 1/2] for X ~ Beta(a + 1, b + 1), by Simpson's rule on the density (a rough check, ~1e-8). */
function betaTailSimpson(a: number, b: number): number {
  const f = (x: number) => Math.pow(x, a) * Math.pow(1 - x, b);
  const simpson = (lo: number, hi: number, n: number) => {
    const h = (hi - lo) / n;
    let acc = f(lo) + f(hi);
    for (let i = 1; i < n; i++) acc += f(lo + i * h) * (i % 2 ? 4 : 2);
    return (acc * h) / 3;
  };
  return simpson(0.5, 1, 20000) / simpson(0, 1, 40000);
}

describe('stopping probability', () => {
  it('is P[Binomial(a + b + 1, 1/2) ≤ a]: 4 unanimous votes pass 0.95, 3 do not', () => {
    expect(stopProbability(4, 0)).toBe(31 / 32);
    expect(stopProbability(3, 0)).toBe(15 / 16);
    expect(stopProbability(0, 0)).toBe(0.5);
    expect(stopProbability(6, 1)).toBe(247 / 256);
    expect(stopProbability(4, 0)).toBeGreaterThanOrEqual(0.95);
    expect(stopProbability(3, 0)).toBeLessThan(0.95);
  });

  it('matches an independent binomial sum on a grid', () => {
    for (let a = 0; a <= 40; a++)
      for (let b = 0; b <= a; b++)
        expect(stopProbability(a, b)).toBeCloseTo(binomialCdfHalf(a, a + b + 1), 14);
  });

  it('the incomplete beta agrees with the binomial form and with closed forms', () => {
    for (let a = 0; a <= 20; a++)
      for (let b = 0; b <= a; b++)
        expect(incompleteBeta(0.5, b + 1, a + 1)).toBeCloseTo(binomialCdfHalf(a, a + b + 1), 12);
    expect(incompleteBeta(0.3, 1, 1)).toBeCloseTo(0.3, 14); // I_x(1,1) = x
    expect(incompleteBeta(0.5, 2.5, 1)).toBeCloseTo(Math.pow(0.5, 2.5), 13); // I_x(a,1) = x^a
    expect(incompleteBeta(0.2, 1, 3.7)).toBeCloseTo(1 - Math.pow(0.8, 3.7), 13); // I_x(1,b) = 1-(1-x)^b
    expect(incompleteBeta(0.5, 1.5, 1.5)).toBeCloseTo(0.5, 14); // symmetry
  });

  it('for real-valued (weighted) votes is P[X > 1/2], X ~ Beta(a + 1, b + 1)', () => {
    // references: mpmath 1.3.0 betainc(b + 1, a + 1, 0, 0.5, regularized=True), 30 digits → nearest double
    for (const [a, b, ref] of [
      [4.4444, 0.5556, 0.9474941711956559],
      [3.2, 1.7, 0.7290899601469512],
      [2.5, 0, 0.9116116523516815],
      [7.25, 2.125, 0.9463943419438671],
      [60 / 11, 6 / 11, 0.9723274193690032],
    ] as const) {
      expect(stopProbability(a, b)).toBeCloseTo(ref, 13);
      expect(betaTailSimpson(a, b)).toBeCloseTo(ref, 7); // the quadrature converges slowly at x = 1
    }
  });
});

describe('earlyStop (Adaptive-Consistency)', () => {
  it('stops after 4 unanimous samples, not 3', () => {
    const five = ['7', '7', '7', '7', '7'].map((a) => s(a));
    expect(earlyStop(five, { equal: same })).toEqual({ stopAt: 4, answer: '7', confidence: 31 / 32 });
    const three = five.slice(0, 3);
    expect(earlyStop(three, { equal: same })).toEqual({ stopAt: 3, answer: '7', confidence: 15 / 16 });
  });

  it('one dissent delays the stop to 6 votes to 1', () => {
    const xs = ['A', 'B', 'A', 'A', 'A', 'A', 'A', 'A'].map((a) => s(a));
    const r = earlyStop(xs, { equal: same });
    expect(r.stopAt).toBe(7);
    expect(r.answer).toBe('A');
    expect(r.confidence).toBe(247 / 256);
  });

  it('abstentions add no evidence', () => {
    const xs = [s(null), s('7'), s(null), s('7'), s('7'), s('7'), s('7')];
    expect(earlyStop(xs, { equal: same }).stopAt).toBe(6);
    expect(earlyStop([s(null), s(null)], { equal: same })).toEqual({
      stopAt: 2,
      answer: null,
      confidence: 0.5,
    });
    expect(earlyStop([], { equal: same })).toEqual({ stopAt: 0, answer: null, confidence: 0 });
  });

  it('never firing, it answers with the vote over all samples', () => {
    const xs = ['A', 'B', 'B', 'A', 'C'].map((a) => s(a));
    expect(earlyStop(xs, { equal: same })).toEqual({
      stopAt: 5,
      answer: vote(xs, 'sc', { equal: same }).answer,
      confidence: stopProbability(2, 2),
    });
  });

  it('weighted (ASC) with equal scores is exactly the unweighted rule', () => {
    const xs = ['A', 'B', 'A', 'A', 'A', 'A', 'A', 'A'].map((a) => s(a, 0.7));
    expect(earlyStop(xs, { equal: same, rule: 'asc' })).toEqual(earlyStop(xs, { equal: same }));
  });

  it('weighted: rescaled ASC weights in the Beta criterion (our extension)', () => {
    // the dissenting sample has score 0: weights A = 2, B = 1 (λ = 1)
    const xs = [s('A', 1), s('B', 0), s('A', 1), s('A', 1), s('A', 1), s('A', 1), s('A', 1)];
    // unweighted: 5-1 after 6 samples is 0.9375 < 0.95, stop at 7 (6-1)
    expect(earlyStop(xs, { equal: same }).stopAt).toBe(7);
    // weighted after 6 samples: n = 6, W = 11, a' = 6·10/11, b' = 6/11
    const a6 = (6 * 10) / 11;
    const b6 = 6 / 11;
    expect(betaTailSimpson(a6, b6)).toBeGreaterThan(0.95);
    // after 5: a' = 5·8/9, b' = 5/9
    expect(betaTailSimpson((5 * 8) / 9, 5 / 9)).toBeLessThan(0.95);
    const r = earlyStop(xs, { equal: same, rule: 'asc' });
    expect(r.stopAt).toBe(6);
    expect(r.answer).toBe('A');
    expect(r.confidence).toBeCloseTo(0.9723274193690032, 13); // mpmath, as above
  });

  it('weighted: a missing score takes the mean of the scores seen so far', () => {
    const xs = [s('B'), s('A', 0), s('A', 0), s('A', 0), s('A', 0), s('A', 0), s('A', 1), s('A', 1)];
    // after 7 samples the seen scores are 0,0,0,0,0,1: B weighs 1 + 1/6, A weighs 5·1 + 2 = 7, W = 49/6,
    // so a' = 7·7/W = 6 and b' = 7·(7/6)/W = 1: P = P[Bin(8, 1/2) ≤ 6] = 247/256 ≥ 0.95. (The mean over
    // the whole question, 2/7, would give a' = 5.91, b' = 1.09 instead.)
    const r = earlyStop(xs, { equal: same, rule: 'asc' });
    expect(r).toEqual({ stopAt: 7, answer: 'A', confidence: 247 / 256 });
    expect(earlyStop(xs.slice(0, 6), { equal: same, rule: 'asc' }).confidence).toBe(120 / 128);
  });

  it('checks its options', () => {
    expect(() => earlyStop([s('A')], { equal: same, threshold: 0.4 })).toThrow(/threshold/);
    expect(() => earlyStop([s('A')], { equal: same, rule: 'ws' as 'sc' })).toThrow(/unknown rule/);
    expect(() => earlyStop([s('A', Number.NaN)], { equal: same, rule: 'asc' })).toThrow(/finite/);
  });
});
