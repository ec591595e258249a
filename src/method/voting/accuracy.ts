/**
 * How many of a set of questions each aggregation rule gets right: the first sample alone, SC, WS,
 * ASC, and early stopping (unweighted and ASC-weighted) with the samples it used. `d2g vote` and
 * `d2g repro` both count with it.
 */
import { earlyStop } from './early-stop.ts';
import { vote, type VoteOptions, type VoteSample } from './voting.ts';

/** One question: its gold answer (extracted) and its samples' answers (and scores). */
export interface VoteRecord {
  gold: string;
  samples: readonly VoteSample[];
}

export interface VoteCounts {
  n: number;
  /** questions each rule answers right */
  correct: { first: number; sc: number; ws: number; asc: number; early_stop: number; early_stop_asc: number };
  /** samples early stopping drew, summed over the questions */
  samples: { early_stop: number; early_stop_asc: number };
}

export function countCorrect(records: readonly VoteRecord[], opts: Required<VoteOptions>): VoteCounts {
  const { equal, lambda } = opts;
  const correct = { first: 0, sc: 0, ws: 0, asc: 0, early_stop: 0, early_stop_asc: 0 };
  const samples = { early_stop: 0, early_stop_asc: 0 };
  for (const r of records) {
    const right = (a: string | null) => (a !== null && equal(a, r.gold) ? 1 : 0);
    correct.first += right(r.samples[0]?.answer ?? null);
    for (const rule of ['sc', 'ws', 'asc'] as const)
      correct[rule] += right(vote(r.samples, rule, opts).answer);
    const es = earlyStop(r.samples, { equal, rule: 'sc' });
    const esAsc = earlyStop(r.samples, { equal, rule: 'asc', lambda });
    correct.early_stop += right(es.answer);
    correct.early_stop_asc += right(esAsc.answer);
    samples.early_stop += es.stopAt;
    samples.early_stop_asc += esAsc.stopAt;
  }
  return { n: records.length, correct, samples };
}
