// The teacher run's settings and the problems it reads (src/method/teacher/run.ts, docs/teacher.md).
import { EngineError } from '../../engine/errors.ts';
import { extractGold, type AnswerKind } from '../answers/index.ts';
import { type Dataset, type LoadIssue } from '../datasets/formats.ts';
import { FEW_SHOTS } from './prompt.ts';

// ---------------------------------------------------------------------------------------------
// Settings

export interface TeacherConfig {
  /** The teacher model's id; a run continues only with the same model. */
  modelId: string;
  /** Answer kind of the dataset: 'math', 'gsm8k', or 'arith' (our synthetic world). */
  kind: AnswerKind;
  /** Rationales per problem. */
  k: number;
  temperature: number;
  topP: number;
  /** Longest rationale in tokens. */
  maxTokens: number;
  /** The run's seed (any integer); another seed gives other rationales. */
  seed: number;
  /** Samples asked for in one call (`n`), at most k and the model's maxN. Smaller: finer progress and cancel. */
  samplesPerCall: number;
  /** Worked examples in the prompt (0..FEW_SHOTS[kind].length). */
  shots: number;
  /** The dataset's name (for statistics and messages). */
  name: string;
}

/** Default longest rationale per kind: MATH solutions run long, world chains are one line. */
export const DEFAULT_MAX_TOKENS: Readonly<Record<AnswerKind, number>> = {
  math: 1024,
  gsm8k: 512,
  arith: 128,
};

/** METHOD.md's sampling defaults (temperature 0.7, top-p 1.0); k = 4 rationales per problem. */
export const TEACHER_DEFAULTS = { k: 4, temperature: 0.7, topP: 1, seed: 0 } as const;

export type TeacherConfigInput = Pick<TeacherConfig, 'modelId' | 'kind'> &
  Partial<Omit<TeacherConfig, 'modelId' | 'kind'>>;

export const bad = (message: string): never => {
  throw new EngineError('BAD_ARGUMENT', message);
};

/** A full, checked config: the defaults where `c` leaves a field out. Throws BAD_ARGUMENT. */
export function teacherConfig(c: TeacherConfigInput): TeacherConfig {
  const k = c.k ?? TEACHER_DEFAULTS.k;
  const cfg: TeacherConfig = {
    modelId: c.modelId,
    kind: c.kind,
    k,
    temperature: c.temperature ?? TEACHER_DEFAULTS.temperature,
    topP: c.topP ?? TEACHER_DEFAULTS.topP,
    maxTokens: c.maxTokens ?? DEFAULT_MAX_TOKENS[c.kind] ?? 512,
    seed: c.seed ?? TEACHER_DEFAULTS.seed,
    samplesPerCall: c.samplesPerCall ?? k,
    shots: c.shots ?? FEW_SHOTS[c.kind]?.length ?? 0,
    name: c.name ?? 'teacher',
  };
  checkConfig(cfg);
  return cfg;
}

export function checkConfig(c: TeacherConfig): void {
  const int = (v: number, lo: number, hi: number) => Number.isInteger(v) && v >= lo && v <= hi;
  if (typeof c.modelId !== 'string' || c.modelId === '') bad('choose a teacher model (its id is empty).');
  if (!Object.hasOwn(FEW_SHOTS, c.kind))
    bad(`the answer kind must be math, gsm8k or arith, not ${String(c.kind)}.`);
  if (!int(c.k, 1, 1024))
    bad(`rationales per problem (k) must be a whole number from 1 to 1024, not ${c.k}.`);
  if (!(c.temperature >= 0 && c.temperature <= 2))
    bad(`temperature must be from 0 (greedy) to 2; 0.7 is the usual choice, not ${c.temperature}.`);
  if (c.k > 1 && c.temperature === 0)
    bad(
      `with temperature 0 every one of the ${c.k} rationales of a problem is the same text: raise it (0.7).`,
    );
  if (!(c.topP > 0 && c.topP <= 1)) bad(`top-p must be above 0 and at most 1 (1 = off), not ${c.topP}.`);
  if (!int(c.maxTokens, 1, 1 << 20))
    bad(`the longest rationale (maxTokens) must be a whole number ≥ 1, not ${c.maxTokens}.`);
  if (!Number.isSafeInteger(c.seed)) bad(`the seed must be a whole number, not ${c.seed}.`);
  if (!int(c.samplesPerCall, 1, 1024))
    bad(`samples per call must be a whole number ≥ 1, not ${c.samplesPerCall}.`);
  const shots = FEW_SHOTS[c.kind].length;
  if (!int(c.shots, 0, shots))
    bad(`the ${c.kind} prompt has ${shots} worked examples: use 0 to ${shots}, not ${c.shots}.`);
}

// ---------------------------------------------------------------------------------------------
// Problems

/** A question to write rationales for. `gold` is a full solution or a bare answer, as in our format. */
export interface TeacherProblem {
  /** Unique within the run: a resumed run matches problems by position and id. */
  id: string;
  question: string;
  gold: string;
  /** `level`, `type`, `subject` (MATH), written to the output as they are. */
  meta?: Record<string, string>;
}

/** The problems of a parsed dataset (its rationales, if any, are not used). */
export function problemsFromDataset(ds: Dataset): TeacherProblem[] {
  return ds.problems.map((p) => ({
    id: p.id,
    question: p.question,
    gold: p.gold,
    ...(p.meta ? { meta: { ...p.meta } } : {}),
  }));
}

/** Problems of our synthetic world (`generateProblems`), ids `<prefix><index>`. */
export function problemsFromWorld(
  problems: readonly { question: string; answer: number }[],
  prefix = 'w',
): TeacherProblem[] {
  return problems.map((p, i) => ({ id: `${prefix}${i}`, question: p.question, gold: String(p.answer) }));
}

const QUESTION_KEYS = ['question', 'problem'] as const;
/** `answer` before `solution`: MATH-500 has both (a bare answer and a solution), GSM8K only `answer`. */
const GOLD_KEYS = ['gold', 'answer', 'ground_truth', 'solution'] as const;
const ID_KEYS = ['id', 'unique_id'] as const;
const META_KEYS = ['level', 'type', 'subject'] as const;

/**
 * Problems from JSON lines with or without rationales: GSM8K `{"question", "answer"}`, MATH
 * `{"problem", "solution", "level", "type"}`, MATH-500 `{"problem", "answer", "unique_id", …}`, our
 * format and the authors'. A line without a question or a gold answer is an issue, skipped.
 */
export function problemsFromJsonl(
  text: string,
  kind: AnswerKind,
): { problems: TeacherProblem[]; issues: LoadIssue[] } {
  const problems: TeacherProblem[] = [];
  const issues: LoadIssue[] = [];
  const ids = new Set<string>();
  const str = (v: unknown): string | null =>
    typeof v === 'string' && v.trim() !== ''
      ? v
      : typeof v === 'number' && Number.isFinite(v)
        ? String(v)
        : null;
  (text.startsWith('\uFEFF') ? text.slice(1) : text).split('\n').forEach((raw, i) => {
    const line = i + 1;
    const src = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (src.trim() === '') return;
    let o: unknown;
    try {
      o = JSON.parse(src);
    } catch (e) {
      issues.push({ line, message: `not valid JSON (${(e as Error).message})` });
      return;
    }
    if (typeof o !== 'object' || o === null || Array.isArray(o)) {
      issues.push({ line, message: 'not a JSON object' });
      return;
    }
    const rec = o as Record<string, unknown>;
    const pick = (keys: readonly string[]) =>
      keys.map((key) => str(rec[key])).find((v) => v !== null) ?? null;
    const question = pick(QUESTION_KEYS);
    const gold = pick(GOLD_KEYS);
    if (question === null) {
      issues.push({ line, message: 'no "question" or "problem" text' });
      return;
    }
    if (gold === null) {
      issues.push({ line, message: 'no gold ("answer", "solution", "gold" or "ground_truth")' });
      return;
    }
    if (extractGold(kind, gold) === null) {
      issues.push({ line, message: `the gold ${JSON.stringify(gold.slice(-80))} has no ${kind} answer` });
      return;
    }
    let id = pick(ID_KEYS) ?? `L${line}`;
    if (ids.has(id)) id = `${id}@L${line}`;
    ids.add(id);
    const meta: Record<string, string> = {};
    for (const key of META_KEYS) {
      const v = str(rec[key]);
      if (v !== null) meta[key] = v;
    }
    problems.push({ id, question, gold, ...(Object.keys(meta).length > 0 ? { meta } : {}) });
  });
  return { problems, issues };
}

/** The gold answer of each problem; BAD_ARGUMENT for an empty list, a repeated id or a gold without answer. */
export function goldAnswersOf(problems: readonly TeacherProblem[], kind: AnswerKind): string[] {
  if (problems.length === 0) bad('the dataset has no problems: load one with questions and gold answers.');
  const ids = new Set<string>();
  return problems.map((p, i) => {
    if (typeof p.id !== 'string' || p.id === '' || ids.has(p.id))
      bad(
        `problem ${i + 1} has ${p.id === '' ? 'an empty' : `the repeated`} id "${p.id}": every problem needs its own id.`,
      );
    ids.add(p.id);
    if (typeof p.question !== 'string' || p.question.trim() === '')
      bad(`problem "${p.id}" has no question text.`);
    const g = typeof p.gold === 'string' ? extractGold(kind, p.gold) : null;
    if (g === null)
      bad(
        `the gold of problem "${p.id}" (${JSON.stringify(String(p.gold).slice(-80))}) has no ${kind} answer, ` +
          'so its rationales could not be checked: fix or drop that problem.',
      );
    return g as string;
  });
}
