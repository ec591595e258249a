/**
 * `d2g dataset`: teacher datasets (src/method/datasets).
 *   stats    --data FILE --kind K [--format F] [--held-out F] [--seed S] [--examples N]
 *            prints JSON statistics: questions, rationales, D_pos / D_neg by our answer checking,
 *            label disagreements with examples, no-answer count, train / held-out counts, skipped lines
 *   convert  --data FILE --kind K --out FILE [--format F]
 *            writes our JSON lines {"question","gold","rationales":[{"text","correct"}]} with `correct`
 *            from our answer checking; skipped lines and label disagreements go to stderr
 * The format (ours, authors, gsm8k-solutions) is detected from the first record unless --format says.
 */
import { writeFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { EngineError } from '../engine/errors.ts';
import type { AnswerKind } from '../method/answers/index.ts';
import {
  DATASET_FORMATS,
  DEFAULT_HELD_OUT,
  datasetStats,
  isDatasetFormat,
  labelDisagreements,
  parseDataset,
  toOursJsonl,
  type Dataset,
  type DatasetFormat,
} from '../method/datasets/index.ts';
import { joinValues, parseKind, readText, withArgErrors } from './check-answer.ts';

export const DATASET_USAGE = `  dataset stats --data FILE --kind math|gsm8k|arith [--format auto|ours|authors|gsm8k-solutions]
          [--held-out F] [--seed S] [--examples N]
  dataset convert --data FILE --kind math|gsm8k|arith --out FILE [--format auto|ours|authors|gsm8k-solutions]
`;

const STRING_OPTIONS = ['data', 'kind', 'format', 'out', 'held-out', 'seed', 'examples'];

function parseFormat(v: string | undefined): DatasetFormat | 'auto' {
  if (v === undefined || v === 'auto') return 'auto';
  if (!isDatasetFormat(v))
    throw new EngineError(
      'BAD_ARGUMENT',
      `dataset: --format is auto, ${DATASET_FORMATS.join(', ')} (got "${v}")`,
    );
  return v;
}

async function load(
  data: string | undefined,
  kind: AnswerKind,
  format: DatasetFormat | 'auto',
): Promise<Dataset> {
  if (data === undefined)
    throw new EngineError(
      'BAD_ARGUMENT',
      'dataset needs --data FILE (JSON lines: ours {"question","gold","rationales"}, the authors\' ' +
        '{"question","answer","generated_answer"}, or GSM8K example_model_solutions.jsonl)',
    );
  const text = await readText('dataset', data);
  return parseDataset(text, { kind, format, name: basename(data) });
}

function warnIssues(file: string, ds: Dataset): void {
  for (const i of ds.issues) process.stderr.write(`warning: ${file} line ${i.line}: ${i.message}; skipped\n`);
}

export async function datasetCommand(argv: string[]): Promise<number> {
  const { values, positionals } = withArgErrors('dataset', () =>
    parseArgs({
      args: joinValues(argv, STRING_OPTIONS),
      options: {
        data: { type: 'string' },
        kind: { type: 'string' },
        format: { type: 'string' },
        out: { type: 'string' },
        'held-out': { type: 'string' },
        seed: { type: 'string' },
        examples: { type: 'string' },
      },
      allowPositionals: true,
      strict: true,
    }),
  );
  const what = positionals[0];
  if ((what !== 'stats' && what !== 'convert') || positionals.length > 1)
    throw new EngineError(
      'BAD_ARGUMENT',
      `dataset needs stats or convert (got ${positionals.length === 0 ? 'nothing' : positionals.map((p) => `"${p}"`).join(' ')}).\nusage:\n${DATASET_USAGE}`,
    );
  const kind = parseKind(`dataset ${what}`, values.kind);
  const format = parseFormat(values.format);
  const data = values.data;

  if (what === 'stats') {
    for (const o of ['out'] as const)
      if (values[o] !== undefined) throw new EngineError('BAD_ARGUMENT', `dataset stats takes no --${o}`);
    const fracText = values['held-out'];
    const fraction = fracText === undefined ? DEFAULT_HELD_OUT.fraction : Number(fracText);
    if (fracText !== undefined && (fracText.trim() === '' || !(fraction >= 0 && fraction <= 1)))
      throw new EngineError(
        'BAD_ARGUMENT',
        `dataset: --held-out is the share of questions held out, a number from 0 to 1 (got "${fracText}")`,
      );
    const seedText = values.seed;
    const seed =
      seedText === undefined
        ? DEFAULT_HELD_OUT.seed
        : /^-?\d{1,15}$/.test(seedText)
          ? Number(seedText)
          : seedText;
    const exText = values.examples;
    const examples = exText === undefined ? 5 : Number(exText);
    if (!Number.isInteger(examples) || examples < 0)
      throw new EngineError(
        'BAD_ARGUMENT',
        `dataset: --examples expects a whole number ≥ 0 (got "${exText}")`,
      );
    const ds = await load(data, kind, format);
    const stats = datasetStats(ds, { heldOut: { fraction, seed }, examples });
    process.stdout.write(JSON.stringify(stats, null, 2) + '\n');
    return 0;
  }

  // convert
  for (const o of ['held-out', 'seed', 'examples'] as const)
    if (values[o] !== undefined) throw new EngineError('BAD_ARGUMENT', `dataset convert takes no --${o}`);
  const { out } = values;
  if (out === undefined) throw new EngineError('BAD_ARGUMENT', 'dataset convert needs --out FILE');
  if (data !== undefined && resolve(out) === resolve(data))
    throw new EngineError(
      'BAD_ARGUMENT',
      `dataset convert: --out ${out} is the input file; write to another file`,
    );
  const ds = await load(data, kind, format);
  warnIssues(data!, ds);
  if (ds.problems.length === 0)
    throw new EngineError(
      'BAD_FILE',
      `dataset convert: ${data} has no usable question (${ds.issues.length} lines skipped${ds.lines === 0 ? '; the file is empty' : ''}); nothing written`,
    );
  const dis = labelDisagreements(ds);
  for (const d of dis.slice(0, 10))
    process.stderr.write(
      `note: ${data} line ${d.line}, rationale ${d.index}${d.source ? ` (${d.source})` : ''}: labelled ` +
        `${d.label ? 'correct' : 'wrong'}, our checking says ${d.ours ? 'correct' : 'wrong'} ` +
        `(answer ${JSON.stringify(d.answer)}, gold ${JSON.stringify(d.goldAnswer)}); written as ours\n`,
    );
  if (dis.length > 10) process.stderr.write(`note: … and ${dis.length - 10} more label disagreements\n`);
  try {
    await writeFile(out, toOursJsonl(ds));
  } catch (cause) {
    throw new EngineError(
      'BAD_ARGUMENT',
      `dataset convert: cannot write ${out}: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
  let rationales = 0;
  let pos = 0;
  for (const p of ds.problems)
    for (const r of p.rationales) {
      rationales++;
      if (r.correct) pos++;
    }
  process.stderr.write(
    `wrote ${ds.problems.length} questions, ${rationales} rationales (${pos} correct, ${rationales - pos} not) ` +
      `to ${out} (input format: ${ds.format}); ${ds.issues.length} lines skipped, ${dis.length} label disagreements\n`,
  );
  return 0;
}
