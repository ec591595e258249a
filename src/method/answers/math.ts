/**
 * MATH answers (METHOD.md §7): the content of the last `\boxed{...}` / `\boxed ...` / `\fbox{...}`,
 * and equivalence by normalisation (normalize.ts), then shape (structure.ts), then exact numbers
 * (numbers.ts), then the guarded symbolic check (symbolic.ts). Never throws.
 *
 * @example
 *   lastBoxed('so $x = \\boxed{\\frac{1}{2}}$.') === '\\frac{1}{2}';
 *   mathEqual('\\dfrac12', '0.5') === true;
 *   mathEqual('(1,2]', '(1,2)') === false;
 */
import { matchBrace, MAX_ANSWER_CHARS, normalizeAnswer } from './normalize.ts';
import { parseRational, rationalsEqual } from './numbers.ts';
import { listsMatch, parseShape, splitTop } from './structure.ts';
import { symbolicEqual } from './symbolic.ts';

/** Recursion bound for nested shapes (a tuple of intervals of tuples ...). */
const MAX_DEPTH = 6;

/**
 * The content of the last `\boxed{...}`, `\fbox{...}` or `\boxed ...` (up to `$` or the end of the
 * line) in `text`, trimmed; null when there is none, it is empty, or its braces never close (a
 * rationale cut off inside its answer has no answer).
 */
export function lastBoxed(text: string): string | null {
  const re = /\\(?:boxed|fbox)(?![a-zA-Z])/g;
  let at = -1;
  let len = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    at = m.index;
    len = m[0].length;
  }
  if (at < 0) return null;
  let i = at + len;
  if (text[i] === '{') {
    const end = matchBrace(text, i);
    if (end < 0) return null;
    const inner = text.slice(i + 1, end - 1).trim();
    return inner === '' ? null : inner;
  }
  if (!/\s/.test(text[i] ?? '')) return null;
  while (i < text.length && /[ \t]/.test(text[i]!)) i++;
  const m = /^[^$\n]*/.exec(text.slice(i));
  const inner = (m ? m[0] : '').trim();
  return inner === '' ? null : inner;
}

/** A MATH answer from a model rationale: the last boxed content (no other fallback). */
export function extractMath(text: string): string | null {
  return lastBoxed(text);
}

/** A MATH gold: the last boxed content of a full solution, else the field itself (a bare answer). */
export function extractMathGold(gold: string): string | null {
  const boxed = lastBoxed(gold);
  if (boxed !== null) return boxed;
  if (/\\(?:boxed|fbox)(?![a-zA-Z])/.test(gold)) return null; // a broken \boxed is not a bare answer
  const bare = gold.trim();
  return bare === '' ? null : bare;
}

const INEQUALITY = /[<>]|\\(?:le|ge|leq|geq|ne|neq|lt|gt|leqslant|geqslant)(?![a-zA-Z])/;
const PM = /\\(?:pm|mp)(?![a-zA-Z])/g;

/** Two normalised scalars: exact numbers, `\pm` pairs, equations side by side, then the engine. */
function scalarEqual(a: string, b: string, depth: number): boolean {
  if (a === b) return true;
  if (a === '' || b === '') return false;
  const ra = parseRational(a);
  const rb = parseRational(b);
  if (ra && rb) return rationalsEqual(ra, rb);
  const pmA = a.match(PM)?.length ?? 0;
  const pmB = b.match(PM)?.length ?? 0;
  if (pmA > 0 || pmB > 0) {
    // "1\pm\sqrt{19}": both branches must agree, sign for sign
    if (pmA !== pmB || pmA > 2) return false;
    const plus = (s: string) => s.replace(PM, (t) => (t === '\\pm' ? '+' : '-'));
    const minus = (s: string) => s.replace(PM, (t) => (t === '\\pm' ? '-' : '+'));
    return scalarEqual(plus(a), plus(b), depth + 1) && scalarEqual(minus(a), minus(b), depth + 1);
  }
  if (INEQUALITY.test(a) || INEQUALITY.test(b)) return false; // inequalities: by string only
  const ea = splitTop(a, '=');
  const eb = splitTop(b, '=');
  if ((ea && ea.length > 1) || (eb && eb.length > 1)) {
    // equations: the same two sides, in either order ("y=2x+3" ≡ "2x+3=y")
    if (!ea || !eb || ea.length !== 2 || eb.length !== 2) return false;
    const [la, ra2] = ea as [string, string];
    const [lb, rb2] = eb as [string, string];
    return (
      (partsEqual(la, lb, depth + 1) && partsEqual(ra2, rb2, depth + 1)) ||
      (partsEqual(la, rb2, depth + 1) && partsEqual(ra2, lb, depth + 1))
    );
  }
  return symbolicEqual(a, b);
}

/** Two normalised answers, shape by shape. */
function partsEqual(a: string, b: string, depth: number): boolean {
  if (a === b) return true;
  if (depth > MAX_DEPTH) return false;
  const sa = parseShape(a);
  const sb = parseShape(b);
  const same = (x: string, y: string) => partsEqual(x, y, depth + 1);
  // a bare list "1,2,3" and a set "\{1,2,3\}" are both unordered collections of answers
  const unordered = (s: typeof sa) =>
    s.kind === 'list' ? s.items : s.kind === 'seq' && s.open === '\\{' ? s.items : null;
  const ua = unordered(sa);
  const ub = unordered(sb);
  if (ua || ub) return !!ua && !!ub && listsMatch(ua, ub, false, same);
  if (sa.kind === 'scalar' && sb.kind === 'scalar') return scalarEqual(a, b, depth);
  if (sa.kind === 'union' && sb.kind === 'union') return listsMatch(sa.parts, sb.parts, false, same);
  if (sa.kind === 'matrix' && sb.kind === 'matrix')
    return (
      sa.rows.length === sb.rows.length && sa.rows.every((row, i) => listsMatch(row, sb.rows[i]!, true, same))
    );
  if (sa.kind === 'seq' && sb.kind === 'seq')
    return sa.open === sb.open && sa.close === sb.close && listsMatch(sa.items, sb.items, true, same);
  return false;
}

/** Equivalence of two extracted MATH answers (see the file header). Never throws; false on any doubt. */
export function mathEqual(a: string, b: string): boolean {
  try {
    if (a.length > MAX_ANSWER_CHARS || b.length > MAX_ANSWER_CHARS) return a === b;
    const na = normalizeAnswer(a);
    const nb = normalizeAnswer(b);
    // "x = 3" vs "y = 3": two different variables named on the two sides
    if (na.lhs !== null && nb.lhs !== null && na.lhs !== nb.lhs) return false;
    return partsEqual(na.s, nb.s, 0);
  } catch {
    return false;
  }
}
