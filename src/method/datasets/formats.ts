/**
 * Teacher datasets from JSON lines, in three formats, parsed from a string (no file system: the
 * browser app uses this too). Every rationale is checked by *our* answer checking
 * (src/method/answers): `correct` is our verdict, `label` the file's own, kept only to compare.
 *
 *   ours              {"question", "gold", "rationales": [{"text", "correct"?}]}
 *   authors           {"question", "answer", "generated_answer": [strings], "level"?, "type"?}   (Yiwei98/TDG)
 *   gsm8k-solutions   {"question", "ground_truth", "<model>": {"is_correct", "solution"}, …}   (openai/grade-school-math)
 *
 * A line that is not a usable record is reported (`issues`, with its line number) and skipped; the
 * rest loads. A line is loaded whole or skipped whole.
 *
 * @example
 *   const ds = parseDataset(text, { kind: 'gsm8k' }); // format detected from the first record
 *   ds.problems[0].rationales[0].correct; // our verdict
 *   ds.issues; // [{ line: 7, message: 'not valid JSON (…)' }]
 */
import { EngineError } from '../../engine/errors.ts';
import { answersEqual, extractAnswer, extractGold, type AnswerKind } from '../answers/index.ts';

export type DatasetFormat = 'ours' | 'authors' | 'gsm8k-solutions';

export const DATASET_FORMATS: readonly DatasetFormat[] = ['ours', 'authors', 'gsm8k-solutions'];

export function isDatasetFormat(s: string): s is DatasetFormat {
  return (DATASET_FORMATS as readonly string[]).includes(s);
}

/** One teacher rationale of a question. */
export interface Rationale {
  text: string;
  /** The answer our extraction reads in `text`; null when there is none (negative, abstains). */
  answer: string | null;
  /** Our verdict: `answer` ≡ the question's gold answer. This decides D_pos / D_neg. */
  correct: boolean;
  /** The file's own correctness label, when it has one (never used to split, only compared). */
  label?: boolean;
  /** Which model wrote it, when the file says (the GSM8K solutions file: `175b_verification`, …). */
  source?: string;
}

export interface Problem {
  /** The record's `id` when it has one (made unique), else `L<line>`. */
  id: string;
  /** 1-based line of the record in its file. */
  line: number;
  question: string;
  /** The gold field as written (a full solution for MATH and GSM8K, or a bare answer). */
  gold: string;
  /** The answer extracted from `gold` (a record whose gold has none is skipped). */
  goldAnswer: string;
  rationales: Rationale[];
  /** `level`, `type`, `subject` when the record has them (MATH), as strings. */
  meta?: Record<string, string>;
}

/** A skipped line: its 1-based number and why. */
export interface LoadIssue {
  line: number;
  message: string;
}

export interface Dataset {
  name: string;
  kind: AnswerKind;
  /** The format of the file (detected or given); null when no line was a record of any format. */
  format: DatasetFormat | null;
  problems: Problem[];
  /** One per skipped line, in line order. */
  issues: LoadIssue[];
  /** Non-blank lines read (records loaded + lines skipped). */
  lines: number;
}

export interface ParseOptions {
  kind: AnswerKind;
  /** Default 'auto': the first line that is a JSON object of a known shape decides for the file. */
  format?: DatasetFormat | 'auto';
  /** For messages and statistics; default 'dataset'. */
  name?: string;
  /** Called after each line with (lines done, total lines): answer checking can take a while on MATH. */
  onProgress?: (done: number, total: number) => void;
}

/** The keys that identify each format, for detection and for messages. */
const FORMAT_SHAPE: Record<DatasetFormat, string> = {
  ours: '{"question","gold","rationales":[{"text","correct"?}]}',
  authors: '{"question","answer","generated_answer":[…]}',
  'gsm8k-solutions': '{"question","ground_truth","<model>":{"is_correct","solution"}}',
};

/** How messages name each format. */
const FORMAT_NAME: Record<DatasetFormat, string> = {
  ours: 'our format',
  authors: "the authors' format",
  'gsm8k-solutions': 'the GSM8K solutions format',
};

const META_KEYS = ['level', 'type', 'subject'] as const;

type JsonObject = Record<string, unknown>;

function isObject(o: unknown): o is JsonObject {
  return typeof o === 'object' && o !== null && !Array.isArray(o);
}

const has = (o: JsonObject, key: string) => Object.prototype.hasOwnProperty.call(o, key);

/**
 * The format a parsed JSON line is in, by its keys: `rationales` or `gold` → ours; `ground_truth` →
 * gsm8k-solutions; `generated_answer` or `answer` → authors; else null.
 */
export function detectFormat(record: unknown): DatasetFormat | null {
  if (!isObject(record)) return null;
  if (has(record, 'rationales') || has(record, 'gold')) return 'ours';
  if (has(record, 'ground_truth')) return 'gsm8k-solutions';
  if (has(record, 'generated_answer') || has(record, 'answer')) return 'authors';
  return null;
}

/** A record before answer checking. */
interface RawProblem {
  id?: string;
  question: string;
  gold: string;
  rationales: { text: string; label?: boolean; source?: string }[];
  meta?: Record<string, string>;
}

function stringField(o: JsonObject, key: string, what: string): string {
  const v = o[key];
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v !== 'string' || v.trim() === '')
    throw new RecordError(`${has(o, key) ? 'an empty or non-string' : 'no'} "${key}" (${what})`);
  return v;
}

/** A line-level problem: the message says what is wrong with the record. */
class RecordError extends Error {}

function common(o: JsonObject): Pick<RawProblem, 'id' | 'meta'> {
  const out: Pick<RawProblem, 'id' | 'meta'> = {};
  const id = o.id;
  if ((typeof id === 'string' && id !== '') || (typeof id === 'number' && Number.isFinite(id)))
    out.id = String(id);
  const meta: Record<string, string> = {};
  for (const k of META_KEYS) {
    const v = o[k];
    if (typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v))) meta[k] = String(v);
  }
  if (Object.keys(meta).length > 0) out.meta = meta;
  return out;
}

function parseOurs(o: JsonObject): RawProblem {
  const question = stringField(o, 'question', 'the question text');
  const gold = stringField(o, 'gold', 'the gold answer or solution');
  const rs = o.rationales ?? [];
  if (!Array.isArray(rs)) throw new RecordError('"rationales" is not an array');
  const rationales = rs.map((r: unknown, j) => {
    if (!isObject(r) || typeof r.text !== 'string')
      throw new RecordError(`rationale ${j} is not {"text": string, "correct"?: boolean}`);
    const c = r.correct;
    if (c !== undefined && c !== null && typeof c !== 'boolean')
      throw new RecordError(`rationale ${j}: "correct" is ${JSON.stringify(c)}, not true or false`);
    return {
      text: r.text,
      ...(typeof c === 'boolean' ? { label: c } : {}),
      ...(typeof r.source === 'string' && r.source !== '' ? { source: r.source } : {}),
    };
  });
  return { question, gold, rationales, ...common(o) };
}

function parseAuthors(o: JsonObject): RawProblem {
  const question = stringField(o, 'question', 'the question text');
  const gold = stringField(o, 'answer', 'the gold solution');
  const gs = o.generated_answer ?? [];
  if (!Array.isArray(gs)) throw new RecordError('"generated_answer" is not an array of strings');
  const rationales = gs.map((g: unknown, j) => {
    if (typeof g !== 'string') throw new RecordError(`generated_answer ${j} is not a string`);
    return { text: g };
  });
  return { question, gold, rationales, ...common(o) };
}

function parseGsm8kSolutions(o: JsonObject): RawProblem {
  const question = stringField(o, 'question', 'the question text');
  const gold = stringField(o, 'ground_truth', 'the gold solution, ending "A: <number>"');
  const rationales: RawProblem['rationales'] = [];
  for (const [key, v] of Object.entries(o)) {
    if (!isObject(v) || !has(v, 'solution')) continue;
    if (typeof v.solution !== 'string') throw new RecordError(`"${key}".solution is not a string`);
    const c = v.is_correct;
    if (c !== undefined && c !== null && typeof c !== 'boolean')
      throw new RecordError(`"${key}".is_correct is ${JSON.stringify(c)}, not true or false`);
    rationales.push({ text: v.solution, source: key, ...(typeof c === 'boolean' ? { label: c } : {}) });
  }
  return { question, gold, rationales, ...common(o) };
}

const PARSERS: Record<DatasetFormat, (o: JsonObject) => RawProblem> = {
  ours: parseOurs,
  authors: parseAuthors,
  'gsm8k-solutions': parseGsm8kSolutions,
};

function checkKind(format: DatasetFormat, kind: AnswerKind, name: string): void {
  if (format === 'gsm8k-solutions' && kind !== 'gsm8k')
    throw new EngineError(
      'BAD_ARGUMENT',
      `${name} is a GSM8K solutions file (its records have "ground_truth" and model solutions), so its ` +
        `answers are GSM8K numbers: load it with kind gsm8k, not ${kind}.`,
    );
}

/**
 * Our verdict on each rationale: its extracted answer against the gold answer. Equal answer strings
 * within one question are checked once (a MATH symbolic comparison can take milliseconds).
 */
export function checkRationales(
  kind: AnswerKind,
  goldAnswer: string,
  rationales: readonly { text: string; label?: boolean; source?: string }[],
): Rationale[] {
  const verdicts = new Map<string, boolean>();
  return rationales.map((r) => {
    const answer = extractAnswer(kind, r.text);
    let correct = false;
    if (answer !== null) {
      const known = verdicts.get(answer);
      correct = known ?? answersEqual(kind, answer, goldAnswer);
      if (known === undefined) verdicts.set(answer, correct);
    }
    return {
      text: r.text,
      answer,
      correct,
      ...(r.label !== undefined ? { label: r.label } : {}),
      ...(r.source !== undefined ? { source: r.source } : {}),
    };
  });
}

/**
 * Parses JSON lines into a dataset. Blank lines are ignored; a leading byte-order mark and `\r\n`
 * line ends are accepted. Throws only for a caller's mistake (a GSM8K solutions file with a kind
 * other than gsm8k); everything wrong inside the text is an `issue` and the line is skipped.
 */
export function parseDataset(text: string, opts: ParseOptions): Dataset {
  const { kind } = opts;
  const name = opts.name ?? 'dataset';
  let format: DatasetFormat | null = opts.format === undefined || opts.format === 'auto' ? null : opts.format;
  if (format !== null) checkKind(format, kind, name);
  const problems: Problem[] = [];
  const issues: LoadIssue[] = [];
  const ids = new Set<string>();
  const rawLines = (text.startsWith('\uFEFF') ? text.slice(1) : text).split('\n');
  let lines = 0;
  const parseLine = (s: string, line: number): Problem | string => {
    let o: unknown;
    try {
      o = JSON.parse(s);
    } catch (e) {
      return `not valid JSON (${(e as Error).message})`;
    }
    if (!isObject(o)) return `not a JSON object (a record is ${FORMAT_SHAPE[format ?? 'ours']})`;
    if (format === null) {
      const detected = detectFormat(o);
      if (detected === null)
        return `not a record of a known format; expected one of ${DATASET_FORMATS.map((f) => FORMAT_SHAPE[f]).join(', ')}`;
      checkKind(detected, kind, name);
      format = detected;
    }
    let rp: RawProblem;
    try {
      rp = PARSERS[format](o);
    } catch (e) {
      if (!(e instanceof RecordError)) throw e;
      const other = detectFormat(o);
      const hint =
        other !== null && other !== format
          ? `; this line looks like ${FORMAT_NAME[other]} but the file is in ${FORMAT_NAME[format]}`
          : `; a record in ${FORMAT_NAME[format]} is ${FORMAT_SHAPE[format]}`;
      return e.message + hint;
    }
    const goldAnswer = extractGold(kind, rp.gold);
    if (goldAnswer === null)
      return `the gold ${JSON.stringify(rp.gold.slice(-80))} has no ${kind} answer (${GOLD_HINT[kind]})`;
    let id = rp.id ?? `L${line}`;
    if (ids.has(id)) id = `${id}@L${line}`;
    ids.add(id);
    return {
      id,
      line,
      question: rp.question,
      gold: rp.gold,
      goldAnswer,
      rationales: checkRationales(kind, goldAnswer, rp.rationales),
      ...(rp.meta ? { meta: rp.meta } : {}),
    };
  };
  rawLines.forEach((raw, i) => {
    const line = i + 1;
    const src = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (src.trim() !== '') {
      lines++;
      const r = parseLine(src, line);
      if (typeof r === 'string') issues.push({ line, message: r });
      else problems.push(r);
    }
    opts.onProgress?.(line, rawLines.length);
  });
  return { name, kind, format, problems, issues, lines };
}

const GOLD_HINT: Record<AnswerKind, string> = {
  math: 'a MATH gold is a solution with \\boxed{…} or the bare answer',
  gsm8k: 'a GSM8K gold ends "#### <number>" or is a number',
  arith: 'an arith gold is an integer',
};

/**
 * Our JSON lines: `{"id"?, "question", "gold", "level"?, "type"?, "subject"?, "rationales": [{"text",
 * "correct", "source"?}]}` with `correct` = our verdict. `id` is written only when the source record
 * had one. Parsing the output gives the same problems back.
 */
export function toOursJsonl(ds: Dataset): string {
  return ds.problems
    .map((p) => {
      const rec: Record<string, unknown> = {};
      if (p.id !== `L${p.line}`) rec.id = p.id;
      rec.question = p.question;
      rec.gold = p.gold;
      for (const [k, v] of Object.entries(p.meta ?? {})) rec[k] = v;
      rec.rationales = p.rationales.map((r) => ({
        text: r.text,
        correct: r.correct,
        ...(r.source !== undefined ? { source: r.source } : {}),
      }));
      return JSON.stringify(rec) + '\n';
    })
    .join('');
}
