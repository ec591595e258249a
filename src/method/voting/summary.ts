/**
 * The votes over a question's finished samples, as the Solve view shows them while samples
 * stream in: every answer group with its SC count, WS weight and ASC weight (METHOD.md §3), the
 * three rules' answers, whether ASC flips SC (the paper's case study), and the early-stopping
 * rule on counts and on ASC weights (METHOD.md §5).
 */
import { answersEqual, type AnswerKind } from '../answers/index.ts';
import { DEFAULT_STOP_THRESHOLD, earlyStop, type EarlyStopResult } from './early-stop.ts';
import { vote, type VoteSample } from './voting.ts';

/** One answer group with its votes under each rule. */
export interface AnswerTally {
  answer: string;
  /** Samples that gave it (SC's votes). */
  count: number;
  /** WS's weight Σ s. */
  ws: number;
  /** ASC's weight Σ (1 + λ s). */
  asc: number;
  /** Equal to the gold answer; null when there is no gold. */
  correct: boolean | null;
}

export interface EarlyStopInfo extends EarlyStopResult {
  /** Whether the rule fired (P ≥ 0.95) within the samples so far. */
  fired: boolean;
}

/** The votes over the finished samples, in sample order. */
export interface VoteSummary {
  /** Finished samples counted (of m). */
  done: number;
  m: number;
  /** Finished samples with no answer (they vote for nothing). */
  abstained: number;
  /** Finished samples with a ranker score (the others get the mean score, METHOD.md §3). */
  scored: number;
  tallies: AnswerTally[];
  sc: string | null;
  ws: string | null;
  asc: string | null;
  /** The answer Solve gives: ASC's. */
  final: string | null;
  /** ASC's answer differs from SC's (both present): the paper's case study. */
  flipped: boolean;
  /** Adaptive-Consistency on the vote counts (null before the first finished sample). */
  early: EarlyStopInfo | null;
  /** The same rule on ASC weights (voting/early-stop.ts). */
  earlyAsc: EarlyStopInfo | null;
}

/** `samples[i]` is null while sample i is still running. */
export function summarizeVotes(
  samples: readonly (VoteSample | null)[],
  kind: AnswerKind,
  gold: string | null,
  lambda = 1,
): VoteSummary {
  const equal = (a: string, b: string) => answersEqual(kind, a, b);
  const done = samples.filter((s): s is VoteSample => s !== null);
  const opts = { equal, lambda };
  const sc = vote(done, 'sc', opts);
  const ws = vote(done, 'ws', opts);
  const asc = vote(done, 'asc', opts);
  // the three rules group answers the same way (sample order): their tallies line up
  const tallies: AnswerTally[] = sc.tallies.map((t, g) => ({
    answer: t.answer,
    count: t.count,
    ws: ws.tallies[g]!.weight,
    asc: asc.tallies[g]!.weight,
    correct: gold === null ? null : equal(t.answer, gold),
  }));
  const early = (rule: 'sc' | 'asc'): EarlyStopInfo | null => {
    if (done.length === 0) return null;
    const r = earlyStop(done, { equal, rule, lambda });
    return { ...r, fired: r.confidence >= DEFAULT_STOP_THRESHOLD };
  };
  return {
    done: done.length,
    m: samples.length,
    abstained: done.filter((s) => s.answer === null).length,
    scored: done.filter((s) => s.score !== undefined).length,
    tallies,
    sc: sc.answer,
    ws: ws.answer,
    asc: asc.answer,
    final: asc.answer,
    flipped: sc.answer !== null && asc.answer !== null && !equal(sc.answer, asc.answer),
    early: early('sc'),
    earlyAsc: early('asc'),
  };
}
