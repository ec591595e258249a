/**
 * Rationales as steps, and where a right and a wrong rationale of one question part ways.
 *
 * A step is a line (GSM8K writes one computation per line), a sentence, or for the arithmetic world
 * one equation ("12 + 3 = 15.") or, in its running style ("12, +3 = 15, -5 = 10. The answer is
 * 10."), the start and each signed quantity with its total. Two steps agree when their keys are equal: for MATH and the world,
 * the text without spacing (LaTeX spacing commands and `\dfrac` vs `\frac` ignored); for GSM8K,
 * what the step computes, the results of its equations (the calculator annotations `<<48/2=24>>`,
 * else each "= n" of the text), since its models word the same computation differently. A GSM8K
 * step with no equation is narration and is skipped, except the final answer line ("A: 18",
 * "#### 18", "The answer is 18"). Plain TS, no DOM.
 *
 * @example
 *   const right = splitSteps('12, +3 = 15, -5 = 10. The answer is 10.', 'arith');
 *   // ['12', '+3 = 15', '-5 = 10.', 'The answer is 10.']
 *   const wrong = splitSteps('12, +3 = 15, +5 = 20. The answer is 20.', 'arith');
 *   firstDivergence(right, wrong, 'arith'); // { right: 2, wrong: 2 }
 */
import type { AnswerKind } from '../../method/answers/index.ts';

/** The rationale's steps, trimmed, none empty. */
export function splitSteps(text: string, kind: AnswerKind): string[] {
  const t = text.replace(/\r\n?/g, '\n');
  let parts: string[];
  if (kind === 'arith') parts = t.split(/(?<=[.,])\s+/).map((x) => x.replace(/,$/, ''));
  else if (kind === 'gsm8k') {
    const lines = t.split('\n').filter((l) => l.trim() !== '');
    parts = lines.length > 1 ? lines : t.split(/(?<=[.!?])\s+(?=[A-Z0-9$])/);
  } else parts = splitMathSteps(t);
  return parts.map((s) => s.trim()).filter((s) => s !== '');
}

/**
 * MATH text: a new step at each line break and after a sentence's final period (a period, space,
 * then a capital, `$` or `\`), never inside math (`$…$`, `$$…$$`, `\(…\)`, `\[…\]`,
 * `\begin{…}…\end{…}`) or an `[asy]…[/asy]` picture.
 */
function splitMathSteps(t: string): string[] {
  const out: string[] = [];
  let start = 0;
  let i = 0;
  const n = t.length;
  /** the closing delimiter of the math region we are in, or null outside math */
  let close: string | null = null;
  let envDepth = 0;
  const cut = (end: number, next: number) => {
    out.push(t.slice(start, end));
    start = next;
  };
  while (i < n) {
    const c = t[i]!;
    if (c === '\\' && t[i + 1] === '$') {
      i += 2; // an escaped dollar is text
      continue;
    }
    if (close !== null) {
      if (t.startsWith(close, i)) {
        i += close.length;
        close = null;
      } else i++;
      continue;
    }
    if (t.startsWith('\\begin{', i)) {
      envDepth++;
      i += 7;
      continue;
    }
    if (t.startsWith('\\end{', i)) {
      envDepth = Math.max(0, envDepth - 1);
      i += 5;
      continue;
    }
    if (envDepth > 0) {
      i++;
      continue;
    }
    if (t.startsWith('$$', i)) [close, i] = ['$$', i + 2];
    else if (c === '$') [close, i] = ['$', i + 1];
    else if (t.startsWith('\\(', i)) [close, i] = ['\\)', i + 2];
    else if (t.startsWith('\\[', i)) [close, i] = ['\\]', i + 2];
    else if (t.startsWith('[asy]', i)) [close, i] = ['[/asy]', i + 5];
    else if (c === '\n') {
      cut(i, i + 1);
      i++;
    } else if (c === '.' && /^\s+[A-Z$\\]/.test(t.slice(i + 1, i + 4))) {
      cut(i + 1, i + 1);
      i++;
    } else i++;
  }
  out.push(t.slice(start));
  return out;
}

/** GSM8K's calculator annotations `<<48/2=24>>`: the model's tool calls, with their results. */
const CALC = /<<[^<>]*=\s*(-?[\d,]*\.?\d+)\s*>>/g;
/** An equation's result in running text: "= 24", "= $1,200". */
const RESULT = /=\s*\$?\s*(-?[\d,]*\.?\d+)/g;
const ANSWER_LINE = /^(?:A:|####|the answer is)\s*\$?\s*(-?[\d,]*\.?\d+)/i;

function num(x: string): string {
  const s = x.replace(/,/g, '');
  return s.includes('.') ? s.replace(/\.?0+$/, '') : s;
}

/**
 * What a step says, for comparison (see the file header). An empty key means the step carries no
 * computation (GSM8K narration) and is skipped when aligning.
 */
export function stepKey(step: string, kind: AnswerKind): string {
  if (kind === 'gsm8k') {
    const calc = [...step.matchAll(CALC)].map((m) => num(m[1]!));
    const results = calc.length > 0 ? calc : [...step.matchAll(RESULT)].map((m) => num(m[1]!));
    if (results.length > 0) return `= ${results.join(' ')}`;
    const a = ANSWER_LINE.exec(step.trim());
    return a ? `A ${num(a[1]!)}` : '';
  }
  return step
    .replace(/\\(?:left|right)(?![a-zA-Z])/g, '')
    .replace(/\\[dt]frac/g, '\\frac')
    .replace(/\\[,;:! ]|~/g, '')
    .replace(/\s+/g, '')
    .replace(/\.$/, '');
}

/** Indices of the first steps that disagree: `right[i]` vs `wrong[j]`. */
export interface Divergence {
  /** Index into the right rationale's steps; equals its length when it ended first. */
  right: number;
  /** Index into the wrong rationale's steps; equals its length when it ended first. */
  wrong: number;
}

/**
 * The first step where two rationales of one question part ways, walking both in order and
 * skipping steps with an empty key; null when every step agrees (same computation, same length).
 */
export function firstDivergence(
  right: readonly string[],
  wrong: readonly string[],
  kind: AnswerKind,
): Divergence | null {
  const rk = right.map((s) => stepKey(s, kind));
  const wk = wrong.map((s) => stepKey(s, kind));
  let i = 0;
  let j = 0;
  for (;;) {
    while (i < rk.length && rk[i] === '') i++;
    while (j < wk.length && wk[j] === '') j++;
    if (i >= rk.length || j >= wk.length || rk[i] !== wk[j]) break;
    i++;
    j++;
  }
  if (i >= rk.length && j >= wk.length) return null;
  return { right: i, wrong: j };
}
