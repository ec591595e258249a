/**
 * D_pos / D_neg by our answer checking (METHOD.md: D_pos = rationales with ŷ ≡ y), where the file's
 * labels disagree with it, and the train / held-out split by question.
 *
 * The held-out split hashes each question's text with the seed: a question's side depends on that
 * question and the seed only, never on the other questions in the file (adding, removing or
 * reordering lines moves no question across), and the same question written twice lands on one side.
 *
 * @example
 *   const { pos, neg } = splitPosNeg(ds);
 *   const { train, heldOut } = heldOutSplit(ds, { fraction: 0.1, seed: 0 });
 *   requireNegatives(train, 'NAT'); // throws a student-readable EngineError when D_neg is empty
 */
import { EngineError } from '../../engine/errors.ts';
import type { Dataset, Problem, Rationale } from './formats.ts';

/** A rationale with its question and its position among that question's rationales. */
export interface RationaleRef {
  problem: Problem;
  rationale: Rationale;
  index: number;
}

export interface PosNeg {
  pos: RationaleRef[];
  neg: RationaleRef[];
}

type Problems = Dataset | readonly Problem[];

const problemsOf = (d: Problems): readonly Problem[] => ('problems' in d ? d.problems : d);

/** D_pos (our `correct`) and D_neg (the rest, no-answer rationales included), in file order. */
export function splitPosNeg(d: Problems): PosNeg {
  const out: PosNeg = { pos: [], neg: [] };
  for (const problem of problemsOf(d))
    problem.rationales.forEach((rationale, index) =>
      (rationale.correct ? out.pos : out.neg).push({ problem, rationale, index }),
    );
  return out;
}

/** A rationale whose given label is not our verdict. */
export interface LabelDisagreement {
  id: string;
  line: number;
  /** Index of the rationale within its question. */
  index: number;
  source?: string;
  /** The file's label. */
  label: boolean;
  /** Our verdict. */
  ours: boolean;
  answer: string | null;
  goldAnswer: string;
  text: string;
}

/** Every rationale whose given label differs from our verdict, in file order. */
export function labelDisagreements(d: Problems): LabelDisagreement[] {
  const out: LabelDisagreement[] = [];
  for (const p of problemsOf(d))
    p.rationales.forEach((r, index) => {
      if (r.label === undefined || r.label === r.correct) return;
      out.push({
        id: p.id,
        line: p.line,
        index,
        ...(r.source !== undefined ? { source: r.source } : {}),
        label: r.label,
        ours: r.correct,
        answer: r.answer,
        goldAnswer: p.goldAnswer,
        text: r.text,
      });
    });
  return out;
}

export interface HeldOutOptions {
  /** Expected share of questions held out, in [0, 1]. Each question is a coin flip, so the count varies. */
  fraction: number;
  /** Another seed gives another split. */
  seed: number | string;
}

export const DEFAULT_HELD_OUT: Readonly<HeldOutOptions> = { fraction: 0.1, seed: 0 };

/** The question as hashed: Unicode NFC, whitespace runs as one space, trimmed. */
export function questionKey(question: string): string {
  return question.normalize('NFC').replace(/\s+/g, ' ').trim();
}

/**
 * 32-bit FNV-1a over the UTF-16 code units of `${seed}\n${questionKey(question)}`, then the
 * MurmurHash3 32-bit finaliser (so that similar texts spread), as a number in [0, 1).
 */
export function questionHash(question: string, seed: number | string): number {
  const s = `${seed}\n${questionKey(question)}`;
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 2 ** 32;
}

function checkHeldOut(opts: HeldOutOptions): void {
  if (!(opts.fraction >= 0 && opts.fraction <= 1))
    throw new EngineError(
      'BAD_ARGUMENT',
      `the held-out fraction must be a number from 0 to 1 (0.1 holds out about a tenth of the questions), got ${opts.fraction}`,
    );
  if (typeof opts.seed === 'number' && !Number.isFinite(opts.seed))
    throw new EngineError(
      'BAD_ARGUMENT',
      `the split seed must be a finite number or a string, got ${opts.seed}`,
    );
}

/** Whether a question is held out under these options. */
export function isHeldOut(question: string, opts: HeldOutOptions): boolean {
  checkHeldOut(opts);
  return questionHash(question, opts.seed) < opts.fraction;
}

/**
 * Train / held-out by question: a question (with all its rationales) is held out when its hash is
 * below `fraction`. Both parts are datasets named `<name> (train)` / `<name> (held-out)`, with the
 * problems in file order and no issues (those stay with the whole dataset).
 */
export function heldOutSplit(ds: Dataset, opts: HeldOutOptions): { train: Dataset; heldOut: Dataset } {
  checkHeldOut(opts);
  const train: Problem[] = [];
  const heldOut: Problem[] = [];
  for (const p of ds.problems)
    (questionHash(p.question, opts.seed) < opts.fraction ? heldOut : train).push(p);
  const part = (problems: Problem[], suffix: string): Dataset => ({
    ...ds,
    name: `${ds.name} (${suffix})`,
    problems,
    issues: [],
    lines: problems.length,
  });
  return { train: part(train, 'train'), heldOut: part(heldOut, 'held-out') };
}

function counts(ds: Dataset): { questions: number; rationales: number; pos: number; neg: number } {
  let rationales = 0;
  let pos = 0;
  for (const p of ds.problems) {
    rationales += p.rationales.length;
    for (const r of p.rationales) if (r.correct) pos++;
  }
  return { questions: ds.problems.length, rationales, pos, neg: rationales - pos };
}

function emptyReason(ds: Dataset): string {
  const skipped =
    ds.issues.length > 0
      ? `; ${ds.issues.length} lines were skipped (see the first: line ${ds.issues[0]!.line}, ${ds.issues[0]!.message})`
      : '';
  if (ds.problems.length === 0) return `"${ds.name}" has no usable question${skipped}`;
  return `"${ds.name}" has ${ds.problems.length} questions but no rationales${skipped}`;
}

/**
 * D_neg of the dataset, or a BAD_ARGUMENT error a student can act on when it is empty: NAT's first
 * stage trains the negative LoRA on D_neg (also MIX, NT, UL and CL need negatives).
 */
export function requireNegatives(ds: Dataset, stage = 'NAT'): RationaleRef[] {
  const { neg } = splitPosNeg(ds);
  if (neg.length > 0) return neg;
  const c = counts(ds);
  const why =
    c.rationales === 0
      ? emptyReason(ds)
      : `"${ds.name}" has ${c.rationales} rationales over ${c.questions} questions and our answer checking finds every one of them correct`;
  throw new EngineError(
    'BAD_ARGUMENT',
    `${stage} needs negative rationales (D_neg: rationales whose answer is wrong), because it learns ` +
      `from the teacher's mistakes; ${why}. Add wrong rationales (sample the teacher more times per ` +
      `question or at a higher temperature, or keep the samples you filtered out), or train with CoT KD, ` +
      `which needs only D_pos.`,
  );
}

/** D_pos of the dataset, or a BAD_ARGUMENT error a student can act on when it is empty. */
export function requirePositives(ds: Dataset, stage = 'training'): RationaleRef[] {
  const { pos } = splitPosNeg(ds);
  if (pos.length > 0) return pos;
  const c = counts(ds);
  const why =
    c.rationales === 0
      ? emptyReason(ds)
      : `"${ds.name}" has ${c.rationales} rationales over ${c.questions} questions and our answer checking finds none of them correct (${ds.kind} answers: is that the right kind for this file?)`;
  throw new EngineError(
    'BAD_ARGUMENT',
    `${stage} needs correct rationales (D_pos: rationales whose answer matches the gold); ${why}. ` +
      `Add correct rationales (sample the teacher more times per question), or check that the gold ` +
      `answers are right.`,
  );
}
