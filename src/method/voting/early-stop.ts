/**
 * Early stopping of sampling (Adaptive-Consistency, Aggarwal et al. 2023; METHOD.md §5). After each
 * finished sample, with a = votes of the leading answer and b = votes of the runner-up,
 *   P(p1 > p2) = P[Binomial(a + b + 1, 1/2) ≤ a]   (= P[X > 1/2] for X ~ Beta(a + 1, b + 1));
 * sampling stops as soon as P ≥ 0.95, so at least 4 unanimous samples are needed (4: 0.969; 3: 0.9375).
 *
 * Weighted version (ours, `rule: 'asc'`): the same Beta criterion on ASC weights w = 1 + λ·s rescaled to
 * the number of votes, so weights move the split between the answers but not the amount of evidence:
 *   a' = n·W(leader)/W, b' = n·W(runner-up)/W, with n the non-abstaining samples so far and W their total
 *   weight; P = P[X > 1/2] for X ~ Beta(a' + 1, b' + 1) = I_{1/2}(b' + 1, a' + 1) (regularised incomplete
 *   beta). Equal weights give a' = a, b' = b: exactly the unweighted rule. A missing score gets the mean
 *   of the scores seen so far (what a live sampler knows); the leader is the ASC leader.
 *
 * @example
 *   stopProbability(4, 0) === 0.96875;
 *   const five = ['7', '7', '7', '7', '7'].map((answer) => ({ answer }));
 *   earlyStop(five, { equal: (a, b) => a === b }).stopAt === 4;
 */
import { EngineError } from '../../engine/errors.ts';
import {
  checkLambda,
  DEFAULT_LAMBDA,
  groupAnswers,
  leaderOf,
  tallyGroups,
  vote,
  voteWeights,
  type VoteSample,
} from './voting.ts';

export const DEFAULT_STOP_THRESHOLD = 0.95;

export interface EarlyStopOptions {
  equal: (a: string, b: string) => boolean;
  /** 'sc': counts (Adaptive-Consistency); 'asc': the weighted version above. Default 'sc'. */
  rule?: 'sc' | 'asc';
  lambda?: number;
  /** stop when P(p1 > p2) ≥ threshold (default 0.95) */
  threshold?: number;
}

export interface EarlyStopResult {
  /** samples used: the prefix length at which sampling stopped (all of them when it never did) */
  stopAt: number;
  /** the vote over that prefix (SC or ASC) */
  answer: string | null;
  /** P(p1 > p2) at the stop */
  confidence: number;
}

/** log Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; relative error ~1e-15). */
function logGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const z = x - 1;
  let s = c[0]!;
  for (let k = 1; k < 9; k++) s += c[k]! / (z + k);
  const t = z + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(s);
}

/** Continued fraction of the incomplete beta (modified Lentz), valid for x < (a + 1) / (a + b + 2). */
function betaFraction(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  d = 1 / (Math.abs(d) < tiny ? tiny : d);
  let h = d;
  for (let m = 1; m <= 500; m++) {
    for (const num of [
      (m * (b - m) * x) / ((a + 2 * m - 1) * (a + 2 * m)),
      (-(a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1)),
    ]) {
      d = 1 + num * d;
      d = 1 / (Math.abs(d) < tiny ? tiny : d);
      c = 1 + num / c;
      if (Math.abs(c) < tiny) c = tiny;
      h *= d * c;
    }
    if (Math.abs(d * c - 1) < 1e-16) break;
  }
  return h;
}

/** The regularised incomplete beta I_x(a, b), a, b > 0, 0 ≤ x ≤ 1. */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  return x < (a + 1) / (a + b + 2)
    ? (front * betaFraction(a, b, x)) / a
    : 1 - (front * betaFraction(b, a, 1 - x)) / b;
}

/**
 * P(p1 > p2) for a leader with a votes and a runner-up with b: P[Binomial(a + b + 1, 1/2) ≤ a], summed
 * exactly for integers; I_{1/2}(b + 1, a + 1) for the real-valued (weighted) case.
 */
export function stopProbability(a: number, b: number): number {
  if (!(a >= 0 && b >= 0) || !Number.isFinite(a + b))
    throw new EngineError(
      'BAD_ARGUMENT',
      `stopProbability: votes a = ${a}, b = ${b} must be finite and ≥ 0.`,
    );
  if (Number.isInteger(a) && Number.isInteger(b)) {
    const n = a + b + 1;
    let term = 1n; // C(n, k)
    let sum = 1n;
    for (let k = 1; k <= a; k++) {
      term = (term * BigInt(n - k + 1)) / BigInt(k);
      sum += term;
    }
    // sum / 2^n with 53 significant bits
    return Number((sum << 64n) >> BigInt(n)) / 2 ** 64;
  }
  return incompleteBeta(0.5, b + 1, a + 1);
}

/** a and b (possibly rescaled weights) for the prefix of `upTo` samples; see the file header. */
function leadAndRunnerUp(weights: number[], counts: number[]): { a: number; b: number } {
  const lead = leaderOf(weights);
  if (lead < 0) return { a: 0, b: 0 };
  const rest = weights.map((w, g) => (g === lead ? -Infinity : w));
  const second = counts.length > 1 ? leaderOf(rest) : -1;
  const n = counts.reduce((x, y) => x + y, 0);
  const total = weights.reduce((x, y) => x + y, 0);
  const scale = total > 0 ? n / total : 0;
  // equal weights must give the integer counts back exactly (float rescaling leaves 3.9999999999999996)
  const snap = (v: number) => (Math.abs(v - Math.round(v)) < 1e-9 ? Math.round(v) : v);
  return { a: snap(weights[lead]! * scale), b: second < 0 ? 0 : snap(weights[second]! * scale) };
}

/**
 * Simulates Adaptive-Consistency on precomputed samples: the shortest prefix at which the stopping
 * rule fires (all samples when it never does) and the vote over that prefix.
 */
export function earlyStop(samples: readonly VoteSample[], opts: EarlyStopOptions): EarlyStopResult {
  const rule = opts.rule ?? 'sc';
  if (rule !== 'sc' && rule !== 'asc')
    throw new EngineError('BAD_ARGUMENT', `earlyStop: unknown rule "${String(rule)}"; use sc or asc.`);
  const lambda = checkLambda(opts.lambda ?? DEFAULT_LAMBDA);
  const threshold = opts.threshold ?? DEFAULT_STOP_THRESHOLD;
  if (!(threshold > 0.5 && threshold <= 1))
    throw new EngineError('BAD_ARGUMENT', `earlyStop: threshold ${threshold} must be in (0.5, 1].`);
  voteWeights(samples, rule, lambda); // validates every score up front
  // grouping a prefix gives the same groups as grouping all samples and cutting: group once
  const { group, firsts } = groupAnswers(samples, opts.equal);
  let confidence = 0;
  for (let k = 1; k <= samples.length; k++) {
    const prefix = samples.slice(0, k);
    const weights = voteWeights(prefix, rule, lambda);
    const tallies = tallyGroups(prefix, group, firsts, weights, k);
    const { a, b } = leadAndRunnerUp(
      tallies.map((t) => t.weight),
      tallies.map((t) => t.count),
    );
    confidence = stopProbability(a, b);
    if (confidence >= threshold) {
      const lead = leaderOf(tallies.map((t) => t.weight));
      return { stopAt: k, answer: tallies[lead]!.answer, confidence };
    }
  }
  const all = vote(samples, rule, { equal: opts.equal, lambda });
  return { stopAt: samples.length, answer: all.answer, confidence };
}
