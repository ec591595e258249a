import { describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.ts';
import { answersEqual } from '../../src/method/answers/index.ts';
import { countCorrect, vote, voteWeights, type VoteSample } from '../../src/method/voting/index.ts';

const same = (a: string, b: string) => a === b;
const s = (answer: string | null, score?: number): VoteSample =>
  score === undefined ? { answer } : { answer, score };

describe('vote: SC, WS, ASC (METHOD.md §3)', () => {
  // SC says "1" (3 votes to 2); the ranker is sure of "4": ASC and WS say "4"
  const flip = [s('4', 0.95), s('4', 0.9), s('1', 0.05), s('1', 0.1), s('1', 0.05)];

  it('SC counts votes', () => {
    const r = vote(flip, 'sc', { equal: same });
    expect(r.answer).toBe('1');
    expect(r.tallies).toEqual([
      { answer: '4', weight: 2, count: 2, first: 0 },
      { answer: '1', weight: 3, count: 3, first: 2 },
    ]);
  });

  it('ASC (w = 1 + λs) flips SC when the ranker is confident', () => {
    const r = vote(flip, 'asc', { equal: same });
    expect(r.answer).toBe('4');
    expect(r.tallies[0]!.weight).toBeCloseTo(1.95 + 1.9, 12);
    expect(r.tallies[1]!.weight).toBeCloseTo(1.05 + 1.1 + 1.05, 12);
    // λ = 0 is SC; λ = 2 weighs the ranker more
    expect(vote(flip, 'asc', { equal: same, lambda: 0 }).answer).toBe('1');
    expect(vote(flip, 'asc', { equal: same, lambda: 2 }).tallies[0]!.weight).toBeCloseTo(2.9 + 2.8, 12);
  });

  it('WS (w = s) and ASC disagree when few high scores face many middling ones', () => {
    const xs = [s('2', 0.6), s('9', 0.25), s('9', 0.25)];
    expect(vote(xs, 'sc', { equal: same }).answer).toBe('9');
    expect(vote(xs, 'ws', { equal: same }).answer).toBe('2'); // 0.6 > 0.5
    expect(vote(xs, 'asc', { equal: same }).answer).toBe('9'); // 1.6 < 2.5
    expect(vote(xs, 'ws', { equal: same }).tallies.map((t) => t.weight)).toEqual([0.6, 0.5]);
  });

  it('groups equivalent answers (math) under the first one written', () => {
    const equal = (a: string, b: string) => answersEqual('math', a, b);
    const r = vote([s('0.5'), s('3'), s('\\frac12'), s('1/2'), s('3.0')], 'sc', { equal });
    expect(r.answer).toBe('0.5');
    expect(r.tallies).toEqual([
      { answer: '0.5', weight: 3, count: 3, first: 0 },
      { answer: '3', weight: 2, count: 2, first: 1 },
    ]);
  });

  it('groups against each group’s first member (a non-transitive relation does not chain)', () => {
    const near = (a: string, b: string) => Math.abs(Number(a) - Number(b)) <= 1;
    const r = vote([s('1'), s('2'), s('3'), s('3')], 'sc', { equal: near });
    expect(r.tallies).toEqual([
      { answer: '1', weight: 2, count: 2, first: 0 },
      { answer: '3', weight: 2, count: 2, first: 2 },
    ]);
    expect(r.answer).toBe('1'); // 2–2 tie: earliest group
  });

  it('abstentions vote for nothing; all abstaining gives null', () => {
    const r = vote([s(null, 0.99), s('7', 0.1), s(null, 0.99)], 'asc', { equal: same });
    expect(r.answer).toBe('7');
    expect(r.tallies).toHaveLength(1);
    expect(r.tallies[0]!.count).toBe(1);
    for (const rule of ['sc', 'ws', 'asc'] as const) {
      expect(vote([s(null), s(null, 0.5)], rule, { equal: same })).toEqual({ answer: null, tallies: [] });
      expect(vote([], rule, { equal: same })).toEqual({ answer: null, tallies: [] });
    }
  });

  it('ties go to the earliest first occurrence, also through float rounding', () => {
    expect(vote([s('A'), s('B'), s('B'), s('A')], 'sc', { equal: same }).answer).toBe('A');
    expect(vote([s('B'), s('A'), s('A'), s('B')], 'sc', { equal: same }).answer).toBe('B');
    // 0.1 + 0.2 = 0.30000000000000004 > 0.3 in floats: still a tie
    expect(vote([s('A', 0.1), s('A', 0.2), s('B', 0.3)], 'ws', { equal: same }).answer).toBe('A');
    expect(vote([s('B', 0.3), s('A', 0.1), s('A', 0.2)], 'ws', { equal: same }).answer).toBe('B');
  });

  it('a missing score is the mean of the question’s present scores (abstainers included)', () => {
    expect(voteWeights([s('A', 0.8), s('B'), s('C', 0.2)], 'ws')).toEqual([0.8, 0.5, 0.2]);
    expect(voteWeights([s('A', 0.8), s(null, 0.2), s('B')], 'asc')).toEqual([1.8, 1.2, 1.5]);
    const r = vote([s('A', 0.8), s('B'), s('B'), s('C', 0.2)], 'ws', { equal: same });
    expect(r.tallies.map((t) => t.weight)).toEqual([0.8, 1.0, 0.2]);
    expect(r.answer).toBe('B');
  });

  it('with no score at all, WS and ASC are SC', () => {
    const xs = [s('A'), s('B'), s('B')];
    expect(voteWeights(xs, 'ws')).toEqual([1, 1, 1]);
    expect(voteWeights(xs, 'asc', 2)).toEqual([1, 1, 1]);
    expect(vote(xs, 'ws', { equal: same })).toEqual(vote(xs, 'sc', { equal: same }));
  });

  it('rejects bad scores, λ and rules with an EngineError', () => {
    expect(() => vote([s('A', Number.NaN)], 'asc', { equal: same })).toThrow(EngineError);
    expect(() => vote([s('A', Infinity)], 'ws', { equal: same })).toThrow(/finite/);
    expect(() => vote([s('A', 0.5)], 'asc', { equal: same, lambda: -1 })).toThrow(/λ/);
    expect(() => vote([s('A')], 'xx' as 'sc', { equal: same })).toThrow(/unknown rule/);
  });
});

describe('countCorrect: what d2g vote and d2g repro count', () => {
  it('counts each rule on its own question, early stopping with the samples it drew', () => {
    const records = [
      // SC "1", ASC and WS "4" (gold 4); the first sample is right
      { gold: '4', samples: [s('4', 0.95), s('4', 0.9), s('1', 0.05), s('1', 0.1), s('1', 0.05)] },
      // SC and ASC "9", WS "2" (gold 9); the first sample is wrong
      { gold: '9', samples: [s('2', 0.6), s('9', 0.25), s('9', 0.25)] },
      // four unanimous samples: early stopping fires at 4 of 6
      { gold: '7', samples: [s('7', 0.5), s('7', 0.5), s('7', 0.5), s('7', 0.5), s('8', 0.5), s('8', 0.5)] },
      // every sample abstains: no rule is right
      { gold: '3', samples: [s(null), s(null)] },
    ];
    const { n, correct, samples } = countCorrect(records, { equal: same, lambda: 1 });
    expect(n).toBe(4);
    expect(correct).toEqual({ first: 2, sc: 2, ws: 2, asc: 3, early_stop: 2, early_stop_asc: 3 });
    // early stopping never fires on the first two (too few samples) nor on the abstentions
    expect(samples).toEqual({ early_stop: 5 + 3 + 4 + 2, early_stop_asc: 5 + 3 + 4 + 2 });
  });
});
