// The model card's markdown subset, parsed to blocks of text for ModelCard.svelte.

/** A piece of inline text: plain, **bold** or `code`. */
export interface Span {
  text: string;
  bold?: boolean;
  code?: boolean;
}
export type CardBlock =
  | { kind: 'h'; level: number; spans: Span[] }
  | { kind: 'p'; spans: Span[] }
  | { kind: 'ul'; items: Span[][] }
  | { kind: 'table'; head: Span[][]; rows: Span[][][] };

export function spansOf(s: string): Span[] {
  const out: Span[] = [];
  const re = /\*\*(.+?)\*\*|`([^`]+)`/g;
  let at = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    if (m.index > at) out.push({ text: s.slice(at, m.index) });
    out.push(m[1] !== undefined ? { text: m[1], bold: true } : { text: m[2]!, code: true });
    at = m.index + m[0].length;
  }
  if (at < s.length) out.push({ text: s.slice(at) });
  return out;
}

/**
 * The model card's markdown, as blocks of text (a subset: headings, paragraphs, `-` lists, pipe
 * tables, **bold**, `code`). Rendered as Svelte text nodes: nothing in the card becomes HTML.
 */
export function parseCard(md: string): CardBlock[] {
  const blocks: CardBlock[] = [];
  const lines = md.replace(/\r\n?/g, '\n').split('\n');
  const cells = (l: string) =>
    l
      .trim()
      .replace(/^\||\|$/g, '')
      .split('|')
      .map((c) => spansOf(c.trim()));
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    const h = /^(#{1,6})\s+(.*)$/.exec(line);
    if (line.trim() === '') i++;
    else if (h) {
      blocks.push({ kind: 'h', level: h[1]!.length, spans: spansOf(h[2]!) });
      i++;
    } else if (line.trimStart().startsWith('|')) {
      const rows: string[] = [];
      while (i < lines.length && lines[i]!.trimStart().startsWith('|')) rows.push(lines[i++]!);
      const body = rows.filter((r) => !/^\s*\|[\s|:-]+\|\s*$/.test(r));
      const [head, ...rest] = body.map(cells);
      blocks.push({ kind: 'table', head: head ?? [], rows: rest });
    } else if (/^\s*- /.test(line)) {
      const items: string[] = [];
      while (i < lines.length && (/^\s*- /.test(lines[i]!) || /^\s{2,}\S/.test(lines[i]!))) {
        const l = lines[i++]!;
        if (/^\s*- /.test(l)) items.push(l.replace(/^\s*- /, ''));
        else items[items.length - 1] += ' ' + l.trim();
      }
      blocks.push({ kind: 'ul', items: items.map(spansOf) });
    } else {
      const para: string[] = [];
      while (i < lines.length && lines[i]!.trim() !== '' && !/^(#|\s*\||\s*- )/.test(lines[i]!))
        para.push(lines[i++]!.trim());
      blocks.push({ kind: 'p', spans: spansOf(para.join(' ')) });
    }
  }
  return blocks;
}
