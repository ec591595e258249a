/**
 * `d2g vote --input FILE --kind math|gsm8k|arith [--lambda L]`: accuracy of answer aggregation over
 * sampled rationales. FILE holds JSON lines `{"id", "question", "gold", "samples": [{"text", "score"?}]}`;
 * each sample's answer is extracted from its text. Prints one JSON object:
 *   {"n", "skipped", "accuracy": {"first", "sc", "ws", "asc", "early_stop", "early_stop_asc"},
 *    "mean_samples_early_stop", "mean_samples_early_stop_asc"}
 * (accuracies are fractions of the n usable records; "first" is the first sample alone).
 * A line that is not a usable record (bad JSON, no gold answer, no samples) is reported on stderr with its
 * line number and skipped; a score outside [0, 1] stops the run (the scores are not a ranker's).
 */
import { parseArgs } from 'node:util';
import { EngineError } from '../engine/errors.ts';
import { answersEqual, extractAnswer, extractGold, type AnswerKind } from '../method/answers/index.ts';
import { countCorrect, type VoteRecord, type VoteSample } from '../method/voting/index.ts';
import { joinValues, parseKind, readText, withArgErrors } from './check-answer.ts';

/** A usable record and the line it came from. */
interface LineRecord extends VoteRecord {
  line: number;
}

export interface VoteSummary {
  n: number;
  skipped: number;
  accuracy: {
    first: number;
    sc: number;
    ws: number;
    asc: number;
    early_stop: number;
    early_stop_asc: number;
  };
  mean_samples_early_stop: number;
  mean_samples_early_stop_asc: number;
}

/** A usable record of line `line`, or a reason to skip it; throws for a score outside [0, 1]. */
function parseRecord(kind: AnswerKind, text: string, line: number, file: string): LineRecord | string {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch (e) {
    return `not valid JSON (${(e as Error).message})`;
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return 'not a JSON object';
  const r = o as { gold?: unknown; samples?: unknown };
  if (typeof r.gold !== 'string' && typeof r.gold !== 'number') return 'no "gold" string';
  const gold = extractGold(kind, String(r.gold));
  if (gold === null) return `the gold ${JSON.stringify(String(r.gold).slice(0, 60))} has no ${kind} answer`;
  if (!Array.isArray(r.samples) || r.samples.length === 0) return 'no "samples" array (or it is empty)';
  const samples: VoteSample[] = [];
  for (const [j, s] of (r.samples as unknown[]).entries()) {
    const sample = s as { text?: unknown; score?: unknown } | null;
    if (typeof sample !== 'object' || sample === null || typeof sample.text !== 'string')
      return `sample ${j} has no "text" string`;
    const score = sample.score;
    if (score !== undefined && score !== null && (typeof score !== 'number' || !(score >= 0 && score <= 1)))
      throw new EngineError(
        'BAD_FILE',
        `vote: ${file} line ${line}, sample ${j}: score ${JSON.stringify(score)} is not a number in [0, 1]; ` +
          'scores are the ranker’s probabilities s ∈ (0, 1) (omit "score" for an unscored sample)',
      );
    samples.push({
      answer: extractAnswer(kind, sample.text),
      ...(typeof score === 'number' ? { score } : {}),
    });
  }
  return { line, gold, samples };
}

/** Accuracy of first / SC / WS / ASC / early stopping over the records. */
export function summarize(kind: AnswerKind, records: LineRecord[], lambda: number, skipped = 0): VoteSummary {
  const { n, correct, samples } = countCorrect(records, {
    equal: (a: string, b: string) => answersEqual(kind, a, b),
    lambda,
  });
  const frac = (x: number) => x / n;
  return {
    n,
    skipped,
    accuracy: {
      first: frac(correct.first),
      sc: frac(correct.sc),
      ws: frac(correct.ws),
      asc: frac(correct.asc),
      early_stop: frac(correct.early_stop),
      early_stop_asc: frac(correct.early_stop_asc),
    },
    mean_samples_early_stop: samples.early_stop / n,
    mean_samples_early_stop_asc: samples.early_stop_asc / n,
  };
}

export async function voteCommand(argv: string[]): Promise<number> {
  const { values } = withArgErrors('vote', () =>
    parseArgs({
      args: joinValues(argv, ['input', 'kind', 'lambda']),
      options: { input: { type: 'string' }, kind: { type: 'string' }, lambda: { type: 'string' } },
      strict: true,
    }),
  );
  const kind = parseKind('vote', values.kind);
  if (values.input === undefined)
    throw new EngineError(
      'BAD_ARGUMENT',
      'vote needs --input FILE (JSON lines {"id","question","gold","samples"})',
    );
  const lambda = values.lambda === undefined ? 1 : Number(values.lambda);
  if (values.lambda !== undefined && (values.lambda.trim() === '' || !Number.isFinite(lambda) || lambda < 0))
    throw new EngineError('BAD_ARGUMENT', `vote: --lambda expects a number ≥ 0, got "${values.lambda}"`);
  const text = await readText('vote', values.input);
  const records: LineRecord[] = [];
  let skipped = 0;
  text.split('\n').forEach((raw, i) => {
    if (raw.trim() === '') return;
    const r = parseRecord(kind, raw, i + 1, values.input!);
    if (typeof r === 'string') {
      skipped++;
      process.stderr.write(`warning: ${values.input} line ${i + 1}: ${r}; skipped\n`);
    } else records.push(r);
  });
  if (records.length === 0)
    throw new EngineError(
      'BAD_FILE',
      `vote: ${values.input} has no usable record (${skipped} skipped); each line is {"id","question","gold","samples":[{"text","score"?}]}`,
    );
  process.stdout.write(JSON.stringify(summarize(kind, records, lambda, skipped)) + '\n');
  return 0;
}
