/**
 * The shape of a normalised MATH answer (spaces already removed): a union of intervals, a matrix, a
 * bracketed tuple / interval / set, a bare comma list, or a scalar. Equivalence compares shapes first and
 * then their parts, so `(1,2]` never meets `(1,2)` and `(1,2)` never meets `(2,1)`.
 *
 * @example
 *   parseShape('(1,2]') // { kind: 'seq', open: '(', close: ']', items: ['1', '2'] }
 */

export type Shape =
  | { kind: 'union'; parts: string[] }
  | { kind: 'matrix'; rows: string[][] }
  | { kind: 'seq'; open: string; close: string; items: string[] }
  | { kind: 'list'; items: string[] }
  | { kind: 'scalar'; s: string };

/** Parts a shape may have; a longer answer is compared as a plain string. */
const MAX_PARTS = 64;

const OPENERS = ['\\{', '\\langle', '(', '[', '{'];
const CLOSERS = ['\\}', '\\rangle', ')', ']', '}'];

/** The bracket of `list` at `i` (a command such as `\langle` only as a whole word). */
function tokenAt(s: string, i: number, list: readonly string[]): string | null {
  for (const t of list) {
    if (!s.startsWith(t, i)) continue;
    if (/^\\[a-zA-Z]/.test(t) && /[a-zA-Z]/.test(s[i + t.length] ?? '')) continue;
    return t;
  }
  return null;
}

/**
 * Splits `s` at every top-level occurrence of `sep` (depth counts every kind of bracket, so the
 * half-open `(1,2]` nests like `(1,2)`). Returns null when the brackets do not balance.
 */
export function splitTop(s: string, sep: string): string[] | null {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length;) {
    const open = tokenAt(s, i, OPENERS);
    if (open) {
      depth++;
      i += open.length;
      continue;
    }
    const close = tokenAt(s, i, CLOSERS);
    if (close) {
      if (--depth < 0) return null;
      i += close.length;
      continue;
    }
    if (s[i] === '\\' && !s.startsWith(sep, i)) {
      const m = /^\\(?:[a-zA-Z]+|.)/.exec(s.slice(i, i + 40));
      i += m ? m[0].length : 1;
      continue;
    }
    if (
      depth === 0 &&
      s.startsWith(sep, i) &&
      !(/[a-zA-Z]$/.test(sep) && /[a-zA-Z]/.test(s[i + sep.length] ?? ''))
    ) {
      parts.push(s.slice(start, i));
      i += sep.length;
      start = i;
      continue;
    }
    i++;
  }
  if (depth !== 0) return null;
  parts.push(s.slice(start));
  return parts;
}

/** The outer bracket pair when it encloses the whole string: `(1,2]` → `(`, `]`, `1,2`. */
function outerBrackets(s: string): { open: string; close: string; inner: string } | null {
  const open = tokenAt(s, 0, OPENERS);
  if (!open || open === '{') return null;
  let depth = 0;
  for (let i = 0; i < s.length;) {
    const o = tokenAt(s, i, OPENERS);
    if (o) {
      depth++;
      i += o.length;
      continue;
    }
    const c = tokenAt(s, i, CLOSERS);
    if (c) {
      depth--;
      i += c.length;
      if (depth === 0)
        return i === s.length ? { open, close: c, inner: s.slice(open.length, i - c.length) } : null;
      continue;
    }
    i += s[i] === '\\' ? 2 : 1;
  }
  return null;
}

const MATRIX = /^\\begin\{([pbvBV]?matrix|array)\}(?:\{[^{}]*\})?(.*)\\end\{\1\}$/;

/** The shape of a normalised answer. */
export function parseShape(s: string): Shape {
  const union = splitTop(s, '\\cup');
  if (union && union.length > 1 && union.length <= MAX_PARTS) return { kind: 'union', parts: union };
  const mat = MATRIX.exec(s);
  if (mat && (mat[1] === 'pmatrix' || mat[1] === 'bmatrix' || mat[1] === 'matrix')) {
    const rows = mat[2]!
      .split('\\\\')
      .filter((r) => r !== '')
      .map((r) => r.split('&'));
    if (rows.length * (rows[0]?.length ?? 0) <= MAX_PARTS) return { kind: 'matrix', rows };
  }
  const outer = outerBrackets(s);
  if (outer) {
    const items = splitTop(outer.inner, ',');
    if (items && items.length > 1 && items.length <= MAX_PARTS)
      return { kind: 'seq', open: outer.open, close: outer.close, items };
    if (outer.open === '\\{' && outer.close === '\\}')
      return { kind: 'seq', open: outer.open, close: outer.close, items: [outer.inner] };
    if (outer.open === '(' && outer.close === ')') return parseShape(outer.inner);
  }
  const items = splitTop(s, ',');
  if (items && items.length > 1 && items.length <= MAX_PARTS) return { kind: 'list', items };
  return { kind: 'scalar', s };
}

/** Ordered (`same` for each position) or unordered (a perfect matching) comparison of two lists. */
export function listsMatch(
  a: string[],
  b: string[],
  ordered: boolean,
  same: (x: string, y: string) => boolean,
): boolean {
  if (a.length !== b.length) return false;
  if (ordered) return a.every((x, i) => same(x, b[i]!));
  const used = new Array<boolean>(b.length).fill(false);
  // greedy matching is exact for an equivalence relation (each x matches a whole class)
  for (const x of a) {
    const j = b.findIndex((y, k) => !used[k] && same(x, y));
    if (j < 0) return false;
    used[j] = true;
  }
  return true;
}
