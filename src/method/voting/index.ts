/**
 * Answer aggregation over sampled rationales: SC, WS and ASC voting (METHOD.md §3) and
 * Adaptive-Consistency early stopping, unweighted and ASC-weighted (METHOD.md §5).
 *
 * @example
 *   const equal = (a: string, b: string) => answersEqual('math', a, b);
 *   vote(samples, 'asc', { equal, lambda: 1 }).answer;
 *   earlyStop(samples, { equal }).stopAt;
 */
export {
  DEFAULT_LAMBDA,
  groupAnswers,
  vote,
  VOTE_RULES,
  voteWeights,
  type Tally,
  type VoteOptions,
  type VoteResult,
  type VoteRule,
  type VoteSample,
} from './voting.ts';
export {
  DEFAULT_STOP_THRESHOLD,
  earlyStop,
  incompleteBeta,
  stopProbability,
  type EarlyStopOptions,
  type EarlyStopResult,
} from './early-stop.ts';
export { countCorrect, type VoteCounts, type VoteRecord } from './accuracy.ts';
export { summarizeVotes, type AnswerTally, type EarlyStopInfo, type VoteSummary } from './summary.ts';
