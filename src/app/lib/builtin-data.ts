/**
 * The datasets the app ships or makes, as text in our JSON-lines format, and the guess of an
 * imported file's answer kind. Plain TS (no DOM, no fetch): the data worker and the unit tests use it.
 *
 *   world    the synthetic arithmetic teacher (src/method/world), generated here: n questions × k samples
 *   gsm8k    OpenAI's example_model_solutions.jsonl (real model rationales with labels), as shipped
 *   math500  MATH-500 problems with reference solutions (no model rationales), converted here
 *
 * @example
 *   const text = worldDatasetJsonl({ n: 500, seed: 1, k: 4 });
 *   parseDataset(text, { kind: 'arith', name: 'world' }).problems.length; // 500
 */
import type { AnswerKind } from '../../method/answers/index.ts';
import { generateProblems, problemKind, teacherSamples } from '../../method/world/index.ts';

export type BuiltinId = 'world' | 'gsm8k' | 'math500';

export interface BuiltinDataset {
  id: BuiltinId;
  title: string;
  kind: AnswerKind;
  /** One sentence on what it holds. */
  description: string;
  /** Path under public/ of the shipped file; none for the generated world. */
  file?: string;
  /** Where it comes from and its licence, for the attribution line. */
  origin: string;
}

export const BUILTIN_DATASETS: readonly BuiltinDataset[] = [
  {
    id: 'world',
    title: 'Arithmetic world',
    kind: 'arith',
    description:
      'Word problems of the synthetic world with 4 rationales each from a fallible teacher, generated in your browser.',
    origin: 'dust2gold (src/method/world), MIT',
  },
  {
    id: 'gsm8k',
    title: 'GSM8K model solutions',
    kind: 'gsm8k',
    description:
      '1,319 GSM8K test questions, each with 4 solutions written by GPT-3 models (6B and 175B), right and wrong.',
    file: 'data/gsm8k/example_model_solutions.jsonl',
    origin: 'openai/grade-school-math, MIT',
  },
  {
    id: 'math500',
    title: 'MATH-500',
    kind: 'math',
    description:
      '500 competition problems with reference solutions (no model rationales: nothing to compare).',
    file: 'data/math/math500.jsonl',
    origin: 'Hendrycks MATH via ZubinGou/math-evaluation-harness, MIT',
  },
];

export interface WorldOptions {
  /** Questions (default 500). */
  n?: number;
  /** Seed of the problems and of the teacher (default 1, as `d2g world dataset --seed 1`). */
  seed?: number;
  /** Teacher samples per question (default 4). */
  k?: number;
}

/** The world's teacher dataset as our JSON lines (the same lines as `d2g world dataset`, plus ids). */
export function worldDatasetJsonl(opts: WorldOptions = {}): string {
  const { n = 500, seed = 1, k = 4 } = opts;
  const problems = generateProblems(n, seed);
  const samples = teacherSamples(problems, k, seed);
  return problems
    .map((p, i) =>
      JSON.stringify({
        id: `w${seed}-${i}`,
        question: p.question,
        gold: String(p.answer),
        type: problemKind(p),
        rationales: samples[i]!.map((s) => ({ text: s.text, correct: s.correct, source: 'teacher' })),
      }),
    )
    .join('\n');
}

/**
 * MATH-500 lines `{"problem","solution","answer","subject","level","unique_id"}` as our lines with
 * the reference solution as the gold (its last `\boxed{}` is the answer) and no rationales. A line
 * that is not such a record is passed on unchanged, so the parser reports it with its line number.
 */
export function math500ToOurs(text: string): string {
  return text
    .split('\n')
    .map((line) => {
      if (line.trim() === '') return line;
      let o: unknown;
      try {
        o = JSON.parse(line);
      } catch {
        return line;
      }
      if (typeof o !== 'object' || o === null || Array.isArray(o)) return line;
      const r = o as Record<string, unknown>;
      if (typeof r.problem !== 'string' || typeof r.solution !== 'string') return line;
      return JSON.stringify({
        ...(typeof r.unique_id === 'string' ? { id: r.unique_id } : {}),
        question: r.problem,
        gold: r.solution,
        ...(typeof r.subject === 'string' ? { subject: r.subject } : {}),
        ...(typeof r.level === 'number' || typeof r.level === 'string' ? { level: r.level } : {}),
        rationales: [],
      });
    })
    .join('\n');
}

/**
 * The answer kind of a dataset file, guessed from its first JSON record; null when no line is one.
 * `ground_truth` → gsm8k; a gold/answer with `\boxed` → math, with `####` → gsm8k; an integer gold
 * → arith when the first rationale ends "The answer is n.", else gsm8k; any other gold → math.
 */
export function guessKind(text: string): AnswerKind | null {
  for (const line of text.split('\n', 200)) {
    if (line.trim() === '') continue;
    let o: unknown;
    try {
      o = JSON.parse(line);
    } catch {
      continue;
    }
    if (typeof o !== 'object' || o === null || Array.isArray(o)) continue;
    const r = o as Record<string, unknown>;
    if ('ground_truth' in r) return 'gsm8k';
    const gold = r.gold ?? r.answer ?? r.solution;
    if (typeof gold === 'number')
      return firstRationale(r)?.match(/The answer is -?\d+\.?\s*$/) ? 'arith' : 'gsm8k';
    if (typeof gold !== 'string') continue;
    if (gold.includes('\\boxed')) return 'math';
    if (gold.includes('####')) return 'gsm8k';
    if (/^\s*-?\d+\s*$/.test(gold))
      return firstRationale(r)?.match(/The answer is -?\d+\.?\s*$/) ? 'arith' : 'gsm8k';
    return 'math';
  }
  return null;
}

function firstRationale(r: Record<string, unknown>): string | undefined {
  const rs = r.rationales ?? r.generated_answer;
  if (!Array.isArray(rs) || rs.length === 0) return undefined;
  const x: unknown = rs[0];
  if (typeof x === 'string') return x;
  if (typeof x === 'object' && x !== null && typeof (x as { text?: unknown }).text === 'string')
    return (x as { text: string }).text;
  return undefined;
}
