/**
 * `d2g check-answer`: is a prediction right? `--pred P --gold G` prints `true` or `false`;
 * `--pairs FILE` (a JSON array of `{"pred", "gold"}`) prints a JSON array of booleans.
 * The prediction may be a whole rationale or a bare answer: when no answer can be extracted from it
 * (no `\boxed{}`, no "The answer is"), the trimmed text itself is taken as the answer.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { EngineError } from '../engine/errors.ts';
import {
  answersEqual,
  ANSWER_KINDS,
  extractAnswer,
  extractGold,
  isAnswerKind,
  type AnswerKind,
} from '../method/answers/index.ts';

/**
 * `--name value` → `--name=value` for the named string options, so a value may start with a dash
 * (`--gold -4`, `--pred -\frac12`); parseArgs alone refuses those as ambiguous.
 */
export function joinValues(argv: string[], names: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (names.includes(a.slice(2)) && a.startsWith('--') && i + 1 < argv.length)
      out.push(`${a}=${argv[++i]!}`);
    else out.push(a);
  }
  return out;
}

/** Runs a parseArgs call; unknown or malformed options become a BAD_ARGUMENT error. */
export function withArgErrors<T>(command: string, parse: () => T): T {
  try {
    return parse();
  } catch (cause) {
    throw new EngineError('BAD_ARGUMENT', `${command}: ${(cause as Error).message}`, { cause });
  }
}

export function parseKind(command: string, kind: string | undefined): AnswerKind {
  if (kind === undefined || !isAnswerKind(kind))
    throw new EngineError(
      'BAD_ARGUMENT',
      `${command} needs --kind ${ANSWER_KINDS.join('|')}${kind === undefined ? '' : ` (got "${kind}")`}`,
    );
  return kind;
}

export async function readText(command: string, path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (cause) {
    throw new EngineError('BAD_ARGUMENT', `${command}: cannot read ${path}: ${(cause as Error).message}`, {
      cause,
    });
  }
}

/** One verdict: the prediction's answer (or the prediction itself) against the gold's answer. */
export function checkPair(kind: AnswerKind, pred: string, gold: string, where: string): boolean {
  const g = extractGold(kind, gold);
  if (g === null) {
    process.stderr.write(
      `warning: ${where}: the gold ${JSON.stringify(gold.slice(0, 80))} has no answer: false\n`,
    );
    return false;
  }
  const p = extractAnswer(kind, pred) ?? pred.trim();
  return p !== '' && answersEqual(kind, p, g);
}

export async function checkAnswerCommand(argv: string[]): Promise<number> {
  const { values } = withArgErrors('check-answer', () =>
    parseArgs({
      args: joinValues(argv, ['kind', 'pred', 'gold', 'pairs']),
      options: {
        kind: { type: 'string' },
        pred: { type: 'string' },
        gold: { type: 'string' },
        pairs: { type: 'string' },
      },
      strict: true,
    }),
  );
  const kind = parseKind('check-answer', values.kind);
  if (values.pairs !== undefined) {
    if (values.pred !== undefined || values.gold !== undefined)
      throw new EngineError(
        'BAD_ARGUMENT',
        'check-answer takes either --pairs FILE or --pred P --gold G, not both',
      );
    const text = await readText('check-answer', values.pairs);
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (cause) {
      throw new EngineError(
        'BAD_FILE',
        `check-answer: ${values.pairs} is not valid JSON (${(cause as Error).message}); it must be an array of {"pred", "gold"}`,
        { cause },
      );
    }
    if (!Array.isArray(data))
      throw new EngineError(
        'BAD_FILE',
        `check-answer: ${values.pairs} must hold a JSON array of {"pred", "gold"}`,
      );
    const verdicts = data.map((item: unknown, i) => {
      const o = item as { pred?: unknown; gold?: unknown } | null;
      if (typeof o !== 'object' || o === null || typeof o.pred !== 'string' || typeof o.gold !== 'string')
        throw new EngineError(
          'BAD_FILE',
          `check-answer: ${values.pairs}: element ${i} must be {"pred": string, "gold": string}, got ${JSON.stringify(item)?.slice(0, 80)}`,
        );
      return checkPair(kind, o.pred, o.gold, `element ${i}`);
    });
    process.stdout.write(JSON.stringify(verdicts) + '\n');
    return 0;
  }
  if (values.pred === undefined || values.gold === undefined)
    throw new EngineError(
      'BAD_ARGUMENT',
      'check-answer needs --pred P --gold G (or --pairs FILE), e.g. --kind math --pred "\\frac12" --gold "0.5"',
    );
  process.stdout.write(`${checkPair(kind, values.pred, values.gold, '--gold')}\n`);
  return 0;
}
