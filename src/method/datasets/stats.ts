/**
 * What a teacher dataset holds, by our answer checking: questions, rationales, D_pos / D_neg,
 * rationales without an answer, agreement with the file's own labels, the train / held-out split,
 * and the lines that were skipped. Plain JSON-able data (the CLI prints it, the app shows it).
 *
 * @example
 *   datasetStats(parseDataset(text, { kind: 'gsm8k' })).labels.agreement; // 1 on OpenAI's file
 */
import type { Dataset, DatasetFormat, LoadIssue } from './formats.ts';
import {
  DEFAULT_HELD_OUT,
  heldOutSplit,
  labelDisagreements,
  questionKey,
  type HeldOutOptions,
} from './split.ts';
import type { AnswerKind } from '../answers/index.ts';

export interface PartCounts {
  questions: number;
  rationales: number;
  pos: number;
  neg: number;
}

export interface DisagreementExample {
  line: number;
  id: string;
  index: number;
  source?: string;
  label: boolean;
  ours: boolean;
  answer: string | null;
  goldAnswer: string;
  /** The rationale, cut to 300 characters. */
  text: string;
}

export interface DatasetStats {
  name: string;
  kind: AnswerKind;
  format: DatasetFormat | null;
  questions: number;
  rationales: number;
  /** |D_pos|: rationales our checking finds correct. */
  pos: number;
  /** |D_neg|: the rest, `noAnswer` included. */
  neg: number;
  /** pos / rationales (0 when there are none). */
  posRate: number;
  /** Rationales in which our extraction finds no answer (negative; they abstain when voting). */
  noAnswer: number;
  rationalesPerQuestion: { min: number; max: number; mean: number };
  questionsWithoutRationales: number;
  questionsWithPos: number;
  questionsWithNeg: number;
  /** Questions with at least one positive and one negative: the ranker's training pairs (METHOD.md §3). */
  questionsWithBoth: number;
  /** Questions whose text (whitespace-normalised) appeared on an earlier line. */
  duplicateQuestions: number;
  /** Per `source` (the model that wrote the rationale), when the file names one. */
  bySource: Record<string, { rationales: number; pos: number }>;
  labels: {
    /** Rationales that carry a label of their own. */
    labelled: number;
    agree: number;
    disagree: number;
    /** agree / labelled; null when nothing is labelled. */
    agreement: number | null;
    /** The first few disagreements. */
    examples: DisagreementExample[];
  };
  split: { fraction: number; seed: number | string; train: PartCounts; heldOut: PartCounts };
  /** Non-blank lines read. */
  lines: number;
  /** Lines skipped (one issue each). */
  skipped: number;
  /** The first `maxIssues` skipped lines with their reasons. */
  issues: LoadIssue[];
  issuesLeftOut: number;
  /** Plain-language warnings: no negatives (NAT will refuse), no positives, no answers at all, … */
  warnings: string[];
}

export interface StatsOptions {
  heldOut?: HeldOutOptions;
  /** Disagreement examples to keep (default 5). */
  examples?: number;
  /** Skipped lines to list (default 50). */
  maxIssues?: number;
}

function partCounts(ds: Dataset): PartCounts {
  let rationales = 0;
  let pos = 0;
  for (const p of ds.problems) {
    rationales += p.rationales.length;
    for (const r of p.rationales) if (r.correct) pos++;
  }
  return { questions: ds.problems.length, rationales, pos, neg: rationales - pos };
}

const cut = (s: string, n: number) => (s.length > n ? s.slice(0, n) + '…' : s);

export function datasetStats(ds: Dataset, opts: StatsOptions = {}): DatasetStats {
  const heldOutOpts = opts.heldOut ?? DEFAULT_HELD_OUT;
  const nExamples = opts.examples ?? 5;
  const maxIssues = opts.maxIssues ?? 50;
  const all = partCounts(ds);
  let noAnswer = 0;
  let questionsWithoutRationales = 0;
  let questionsWithPos = 0;
  let questionsWithNeg = 0;
  let questionsWithBoth = 0;
  let duplicateQuestions = 0;
  let labelled = 0;
  let min = Infinity;
  let max = 0;
  const seen = new Set<string>();
  // a Map, not an object: a source named "__proto__" must stay data
  const bySource = new Map<string, { rationales: number; pos: number }>();
  for (const p of ds.problems) {
    const key = questionKey(p.question);
    if (seen.has(key)) duplicateQuestions++;
    seen.add(key);
    const n = p.rationales.length;
    min = Math.min(min, n);
    max = Math.max(max, n);
    if (n === 0) questionsWithoutRationales++;
    const hasPos = p.rationales.some((r) => r.correct);
    const hasNeg = p.rationales.some((r) => !r.correct);
    if (hasPos) questionsWithPos++;
    if (hasNeg) questionsWithNeg++;
    if (hasPos && hasNeg) questionsWithBoth++;
    for (const r of p.rationales) {
      if (r.answer === null) noAnswer++;
      if (r.label !== undefined) labelled++;
      if (r.source !== undefined) {
        let s = bySource.get(r.source);
        if (s === undefined) bySource.set(r.source, (s = { rationales: 0, pos: 0 }));
        s.rationales++;
        if (r.correct) s.pos++;
      }
    }
  }
  const disagreements = labelDisagreements(ds);
  const { train, heldOut } = heldOutSplit(ds, heldOutOpts);

  const warnings: string[] = [];
  if (ds.problems.length === 0)
    warnings.push(
      `no usable question${ds.issues.length > 0 ? ` (${ds.issues.length} lines skipped, see "issues")` : ' (the file is empty)'}`,
    );
  else if (all.rationales === 0)
    warnings.push('no rationales: the questions can serve for evaluation, not for training');
  else {
    if (all.neg === 0)
      warnings.push(
        'no negatives: every rationale is correct by our checking, so NAT (and MIX, NT, UL, CL) will refuse this dataset; CoT KD can use it',
      );
    if (all.pos === 0)
      warnings.push(
        `no positives: no rationale is correct by our checking; is "${ds.kind}" the right kind for this file?`,
      );
    if (noAnswer === all.rationales)
      warnings.push(`no rationale has an answer that our ${ds.kind} extraction can read: check the kind`);
    if (disagreements.length > 0)
      warnings.push(
        `${disagreements.length} of ${labelled} given labels disagree with our answer checking; the split follows ours (see "labels.examples")`,
      );
    // (a fraction of 0 or 1 asks for an empty side: no warning then)
    const f = heldOutOpts.fraction;
    if ((f > 0 && heldOut.problems.length === 0) || (f < 1 && train.problems.length === 0))
      warnings.push(
        `the held-out split left ${train.problems.length === 0 ? 'nothing to train on' : 'no question held out'} (fraction ${f}, ${ds.problems.length} questions)`,
      );
  }

  return {
    name: ds.name,
    kind: ds.kind,
    format: ds.format,
    questions: all.questions,
    rationales: all.rationales,
    pos: all.pos,
    neg: all.neg,
    posRate: all.rationales > 0 ? all.pos / all.rationales : 0,
    noAnswer,
    rationalesPerQuestion: {
      min: ds.problems.length > 0 ? min : 0,
      max,
      mean: ds.problems.length > 0 ? all.rationales / ds.problems.length : 0,
    },
    questionsWithoutRationales,
    questionsWithPos,
    questionsWithNeg,
    questionsWithBoth,
    duplicateQuestions,
    bySource: Object.fromEntries(bySource),
    labels: {
      labelled,
      agree: labelled - disagreements.length,
      disagree: disagreements.length,
      agreement: labelled > 0 ? (labelled - disagreements.length) / labelled : null,
      examples: disagreements.slice(0, nExamples).map((d) => ({ ...d, text: cut(d.text, 300) })),
    },
    split: {
      fraction: heldOutOpts.fraction,
      seed: heldOutOpts.seed,
      train: partCounts(train),
      heldOut: partCounts(heldOut),
    },
    lines: ds.lines,
    skipped: ds.issues.length,
    issues: ds.issues.slice(0, maxIssues),
    issuesLeftOut: Math.max(0, ds.issues.length - maxIssues),
    warnings,
  };
}
