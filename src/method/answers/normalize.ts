/**
 * Hendrycks-style normalisation of a MATH answer (the `strip_string` of the MATH paper's grader,
 * written from its description, with our additions marked "ours"). The output is a canonical string:
 * two answers whose outputs are equal are judged equal without further work. Never throws.
 *
 * @example
 *   stripString('\\dfrac12') === '\\frac{1}{2}';
 *   stripString('x = 5\\text{ cm}') === '5';
 */

/** Longest answer we normalise; longer text is no MATH answer (and must not cost time). */
export const MAX_ANSWER_CHARS = 1000;

const TEXT_COMMANDS = '(?:text|textbf|textit|textrm|textnormal|mbox|mathrm|mathbf|mathit)';

/** Index just past the `{...}` group that opens at `open` (escaped braces skipped), or -1. */
export function matchBrace(s: string, open: number): number {
  if (s[open] !== '{') return -1;
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    const c = s[i];
    if (c === '\\') i++;
    else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return i + 1;
  }
  return -1;
}

/**
 * The left side of a short equation prefix (`x = 3` → `x`), else null. Hendrycks drops a left side of at
 * most two characters; ours: only a single letter (optionally primed or with a one-character
 * subscript), so `f(x)=3` or `2=2` are left alone.
 */
export function shortLhs(s: string): string | null {
  const parts = s.split('=');
  if (parts.length !== 2) return null;
  const lhs = parts[0]!.replace(/\s+/g, '');
  return /^[a-zA-Z](?:_\{?[a-zA-Z0-9]\}?)?'?$/.test(lhs) ? lhs : null;
}

/** Drops a trailing unit in `\text{...}` (and the like) after a value; unwraps every other text group. */
function handleText(s: string): string {
  const trailing = new RegExp(`\\\\${TEXT_COMMANDS}\\s*\\{`, 'g');
  // trailing units: "5\text{ cm}", "5 \mbox{ square inches}", "2\text{ m}^2"
  for (let guard = 0; guard < 8; guard++) {
    let last = -1;
    let lastEnd = -1;
    trailing.lastIndex = 0;
    for (let m = trailing.exec(s); m !== null; m = trailing.exec(s)) {
      last = m.index;
      lastEnd = matchBrace(s, m.index + m[0].length - 1);
    }
    if (last <= 0 || lastEnd < 0) break;
    const rest = s.slice(lastEnd).replace(/^\^\{?[23]\}?/, '');
    const before = s.slice(0, last).trim();
    const inner = s.slice(s.indexOf('{', last) + 1, lastEnd - 1).trim();
    // a unit is words (letters, spaces); it follows a value (ends in a digit, a brace or a bracket)
    if (rest.trim() !== '' || !/^[a-zA-Z][a-zA-Z .]*$/.test(inner) || !/[\d})\]]$/.test(before)) break;
    s = before;
  }
  // remaining text groups: keep their content ("\text{(A)}" → "(A)", "\text{Evelyn}" → "Evelyn")
  const any = new RegExp(`\\\\${TEXT_COMMANDS}\\s*\\{`);
  for (let guard = 0; guard < 32; guard++) {
    const m = any.exec(s);
    if (!m) break;
    const open = m.index + m[0].length - 1;
    const end = matchBrace(s, open);
    if (end < 0) break;
    s = s.slice(0, m.index) + s.slice(open + 1, end - 1) + s.slice(end);
  }
  return s;
}

/** One argument of `\frac`/`\sqrt` at `i`: a brace group, a command, or one character. */
function readArg(s: string, i: number): { arg: string; end: number } | null {
  if (i >= s.length) return null;
  if (s[i] === '{') {
    const end = matchBrace(s, i);
    return end < 0 ? null : { arg: s.slice(i + 1, end - 1), end };
  }
  if (s[i] === '\\') {
    const m = /^\\[a-zA-Z]+/.exec(s.slice(i));
    return m ? { arg: m[0], end: i + m[0].length } : null;
  }
  return { arg: s[i]!, end: i + 1 };
}

/** `\frac12` → `\frac{1}{2}`, `\frac1{x}` → `\frac{1}{x}` (on a string without spaces). */
export function fixFracs(s: string): string {
  let out = '';
  let i = 0;
  for (let guard = 0; guard < 200; guard++) {
    const k = s.indexOf('\\frac', i);
    if (k < 0) break;
    out += s.slice(i, k) + '\\frac';
    const a = readArg(s, k + 5);
    const b = a ? readArg(s, a.end) : null;
    if (!a || !b) return out + s.slice(k + 5);
    out += `{${a.arg}}{${b.arg}}`;
    i = b.end;
  }
  return out + s.slice(i);
}

/** `\sqrt2` → `\sqrt{2}` (a bracketed index `\sqrt[3]{8}` is kept). */
export function fixSqrt(s: string): string {
  return s.replace(/\\sqrt(?![a-zA-Z])\s*([0-9a-zA-Z])/g, '\\sqrt{$1}');
}

/** A normalised answer and the variable of a dropped `x =` prefix (null when there was none). */
export interface Normalized {
  s: string;
  lhs: string | null;
}

/**
 * The normal form of a MATH answer: Hendrycks' steps (newlines, `\!`, `\left`/`\right`, `\dfrac`,
 * degrees, `\$`, units, `%`, leading zero, short `x =` prefix, `\sqrt2`, spaces, `\frac12`, `a/b`),
 * plus ours: thin spaces, Unicode symbols, thousands separators, trailing `.0`, a final period,
 * multiple-choice letters.
 */
export function normalizeAnswer(input: string): Normalized {
  if (input.length > MAX_ANSWER_CHARS) return { s: input, lhs: null };
  let s = input
    .replace(/[\n\r\t]/g, ' ')
    .replace(/\u2212|\u2013/g, '-')
    .replace(/\u03c0/g, '\\pi ')
    .replace(/\u221e/g, '\\infty ')
    .replace(/\u00b0/g, '^\\circ')
    .replace(/,\s*\\!\s*/g, ',') // "10,\!080": MATH's thousands separator
    .replace(/(?<!\\)\\!/g, '')
    .replace(/(?<!\\)\\[,;:> ]/g, ' ')
    .replace(/~/g, ' ')
    .replace(/\\(?:displaystyle|textstyle|limits)(?![a-zA-Z])/g, '')
    .replace(/\\[dtc]frac(?![a-zA-Z])/g, '\\frac')
    .replace(/\\[dt]binom(?![a-zA-Z])/g, '\\binom')
    .replace(/\\(?:left|right|[bB]igg?[lr]?)(?![a-zA-Z])\s*/g, '')
    .replace(/\\lbrace(?![a-zA-Z])/g, '\\{')
    .replace(/\\rbrace(?![a-zA-Z])/g, '\\}')
    .replace(/\^\s*\{\s*\\circ\s*\}|\^\s*\\circ(?![a-zA-Z])|\\degree(?![a-zA-Z])/g, '')
    .replace(/\\\$|\$/g, '');
  s = handleText(s);
  s = s
    .replace(/\\%|%/g, '')
    .replace(/(^|[^\d])\.(\d)/g, '$10.$2')
    .trim();
  let lhs = shortLhs(s);
  if (lhs !== null) s = s.slice(s.indexOf('=') + 1).trim();
  const member = /^([a-zA-Z])\s*\\in(?![a-zA-Z])\s*/.exec(s); // ours: "x \in [-2,7]" → "[-2,7]"
  if (lhs === null && member) {
    lhs = member[1]!;
    s = s.slice(member[0].length);
  }
  // thousands separators: "1,000", "10{,}000" (a whole number, no space after the commas)
  s = s.replace(/\{,\}/g, '');
  if (/^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$/.test(s)) s = s.replace(/,/g, '');
  // spaces go, except one after a command that a letter follows ("\cot x" must not become "\cotx")
  s = fixSqrt(s)
    .replace(/(\\[a-zA-Z]+)\s+(?=[a-zA-Z])/g, '$1\uE000')
    .replace(/\s+/g, '')
    .replace(/\uE000/g, ' ');
  s = fixFracs(s);
  s = s.replace(/\.$/, ''); // a sentence's final period ("5.")
  // trailing zeros of decimals: "18.00" → "18", "2.50" → "2.5"
  s = s.replace(/(\d)\.(\d*?)0+(?!\d)/g, (_m, a: string, b: string) => (b ? `${a}.${b}` : a));
  const slash = /^(-?)(\d+)\/(\d+)$/.exec(s);
  if (slash) s = `${slash[1]}\\frac{${slash[2]}}{${slash[3]}}`;
  const choice = /^\(([A-E])\)$/.exec(s);
  if (choice) s = choice[1]!;
  return { s, lhs };
}

/** The normalised string alone (see {@link normalizeAnswer}). */
export function stripString(input: string): string {
  return normalizeAnswer(input).s;
}
