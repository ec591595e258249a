/**
 * Answer voting over m sampled rationales (METHOD.md §3): `V(a) = Σ_{i: a_i ≡ a} w(s_i)`, answer =
 * argmax V. SC: w = 1. WS: w = s. ASC: w = 1 + λ·s (λ = 1 by default).
 *  - A missing score is replaced by the mean of the question's present scores (all its samples,
 *    abstaining ones included); with no score at all every weight is 1 (WS and ASC become SC).
 *  - A sample with no answer (null) votes for nothing; when all abstain the answer is null.
 *  - Answers are grouped in sample order: each joins the first group whose first member it equals
 *    (`equal(first, answer)`), else starts a group.
 *  - Ties (weights within a relative 1e-12, so float rounding cannot break a tie) go to the group whose
 *    first member came earliest.
 *
 * @example
 *   vote([{ answer: '2', score: 0.9 }, { answer: '3', score: 0.1 }, { answer: '3', score: 0.2 }], 'asc',
 *        { equal: (a, b) => a === b }).answer === '3';
 */
import { EngineError } from '../../engine/errors.ts';

export type VoteRule = 'sc' | 'ws' | 'asc';

export const VOTE_RULES: readonly VoteRule[] = ['sc', 'ws', 'asc'];

export const DEFAULT_LAMBDA = 1;

export interface VoteSample {
  answer: string | null;
  /** the ranker's score s of the rationale, usually in (0, 1); absent when it was not scored */
  score?: number | undefined;
}

export interface VoteOptions {
  /** ASC's λ in w = 1 + λ·s (default 1) */
  lambda?: number;
  /** answer equivalence, e.g. `(a, b) => answersEqual('math', a, b)` */
  equal: (a: string, b: string) => boolean;
}

export interface Tally {
  /** the group's first answer, as written */
  answer: string;
  /** V(answer): the sum of the group's weights */
  weight: number;
  /** how many samples voted for it */
  count: number;
  /** index of its first sample */
  first: number;
}

export interface VoteResult {
  /** the winning answer (its group's first member), or null when every sample abstained */
  answer: string | null;
  /** one per answer group, in order of first occurrence */
  tallies: Tally[];
}

/** Relative difference under which two vote weights count as a tie. */
const TIE_TOLERANCE = 1e-12;

export function checkLambda(lambda: number): number {
  if (!Number.isFinite(lambda) || lambda < 0)
    throw new EngineError(
      'BAD_ARGUMENT',
      `vote: λ = ${lambda} must be a finite number ≥ 0 (the paper uses 1 or 2).`,
    );
  return lambda;
}

/** Group index of every sample (-1 for an abstention) and each group's first sample. */
export function groupAnswers(
  samples: readonly VoteSample[],
  equal: (a: string, b: string) => boolean,
): { group: number[]; firsts: number[] } {
  const group: number[] = [];
  const firsts: number[] = [];
  samples.forEach((s, i) => {
    if (s.answer === null) {
      group.push(-1);
      return;
    }
    const a = s.answer;
    const g = firsts.findIndex((f) => equal(samples[f]!.answer!, a));
    if (g >= 0) group.push(g);
    else {
      group.push(firsts.length);
      firsts.push(i);
    }
  });
  return { group, firsts };
}

/** The weight of each sample under `rule` (scores checked: finite numbers or absent). */
export function voteWeights(
  samples: readonly VoteSample[],
  rule: VoteRule,
  lambda = DEFAULT_LAMBDA,
): number[] {
  checkLambda(lambda);
  const present: number[] = [];
  samples.forEach((s, i) => {
    if (s.score === undefined) return;
    if (typeof s.score !== 'number' || !Number.isFinite(s.score))
      throw new EngineError(
        'BAD_ARGUMENT',
        `vote: sample ${i} has score ${String(s.score)}; a score is a finite number.`,
      );
    present.push(s.score);
  });
  if (rule === 'sc' || present.length === 0) return samples.map(() => 1);
  const mean = present.reduce((x, y) => x + y, 0) / present.length;
  return samples.map((s) => {
    const score = s.score ?? mean;
    return rule === 'ws' ? score : 1 + lambda * score;
  });
}

/** Index of the largest weight; ties (relative 1e-12) go to the lowest index. -1 for no tallies. */
export function leaderOf(weights: readonly number[]): number {
  let best = -1;
  let max = -Infinity;
  for (const w of weights) if (w > max) max = w;
  for (let g = 0; g < weights.length && best < 0; g++)
    if (weights[g]! >= max - TIE_TOLERANCE * Math.abs(max)) best = g;
  return best;
}

/** Tallies of the groups from per-sample weights (abstentions skipped). */
export function tallyGroups(
  samples: readonly VoteSample[],
  group: readonly number[],
  firsts: readonly number[],
  weights: readonly number[],
  upTo = samples.length,
): Tally[] {
  const tallies: Tally[] = [];
  for (const f of firsts) {
    if (f >= upTo) break;
    tallies.push({ answer: samples[f]!.answer!, weight: 0, count: 0, first: f });
  }
  for (let i = 0; i < upTo; i++) {
    const g = group[i]!;
    if (g < 0) continue;
    tallies[g]!.weight += weights[i]!;
    tallies[g]!.count += 1;
  }
  return tallies;
}

/** Votes over the samples of one question with rule SC, WS or ASC (see the file header). */
export function vote(samples: readonly VoteSample[], rule: VoteRule, opts: VoteOptions): VoteResult {
  if (!VOTE_RULES.includes(rule))
    throw new EngineError('BAD_ARGUMENT', `vote: unknown rule "${String(rule)}"; use sc, ws or asc.`);
  const weights = voteWeights(samples, rule, opts.lambda ?? DEFAULT_LAMBDA);
  const { group, firsts } = groupAnswers(samples, opts.equal);
  const tallies = tallyGroups(samples, group, firsts, weights);
  const lead = leaderOf(tallies.map((t) => t.weight));
  return { answer: lead < 0 ? null : tallies[lead]!.answer, tallies };
}
