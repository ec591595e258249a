/**
 * Splits MATH-style text into plain text and LaTeX math: `$…$`, `\(…\)` inline, `$$…$$`, `\[…\]`
 * display, and `[asy]…[/asy]` figures (Asymptote source, which we show as source, not as math).
 * `\$` is a literal dollar in text. An unclosed delimiter is text (a cut-off rationale must
 * not swallow the rest of the page into one formula). Plain TS: the component renders text segments
 * as text nodes and hands only math segments to KaTeX.
 *
 * @example
 *   splitMath('So $x = 2$, \\$5.');
 *   // [{ kind: 'text', value: 'So ' }, { kind: 'math', value: 'x = 2', display: false },
 *   //  { kind: 'text', value: ', $5.' }]
 */
export type Segment =
  | { kind: 'text'; value: string }
  | { kind: 'math'; value: string; display: boolean }
  | { kind: 'figure'; value: string };

const OPENERS: readonly { open: string; close: string; display: boolean }[] = [
  { open: '$$', close: '$$', display: true },
  { open: '\\[', close: '\\]', display: true },
  { open: '\\(', close: '\\)', display: false },
  { open: '$', close: '$', display: false },
];

/** The index of `close` at or after `from`, skipping `\$` when the delimiter is a dollar. */
function findClose(t: string, close: string, from: number): number {
  for (let k = t.indexOf(close, from); k >= 0; k = t.indexOf(close, k + 1)) {
    if (close.startsWith('$') && t[k - 1] === '\\') continue;
    return k;
  }
  return -1;
}

export function splitMath(text: string): Segment[] {
  const out: Segment[] = [];
  let buf = '';
  let i = 0;
  const flush = () => {
    if (buf !== '') out.push({ kind: 'text', value: buf });
    buf = '';
  };
  while (i < text.length) {
    if (text[i] === '\\' && text[i + 1] === '$') {
      buf += '$';
      i += 2;
      continue;
    }
    if (text.startsWith('[asy]', i)) {
      const end = text.indexOf('[/asy]', i + 5);
      if (end >= 0) {
        flush();
        out.push({ kind: 'figure', value: text.slice(i + 5, end).trim() });
        i = end + 6;
        continue;
      }
    }
    const op = OPENERS.find((o) => text.startsWith(o.open, i));
    if (op) {
      const end = findClose(text, op.close, i + op.open.length);
      const body = end >= 0 ? text.slice(i + op.open.length, end) : '';
      if (end >= 0 && body.trim() !== '') {
        flush();
        out.push({ kind: 'math', value: body, display: op.display });
        i = end + op.close.length;
        continue;
      }
    }
    buf += text[i];
    i++;
  }
  flush();
  return out;
}
