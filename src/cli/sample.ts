/**
 * `d2g sample`: m rationales per question from a student at a temperature, optionally scored by a
 * ranker; writes the `vote` input format, one JSON line per question:
 *   {"id", "question", "gold", "samples": [{"text", "score"?}]}
 *   npm run d2g -- sample --data F --out FILE [--model M] [--tokenizer T] [--adapters DIR]
 *        [--ranker DIR] [--kind K] [--m 16] [--temperature 0.7] [--split held-out|train|all]
 *        [--limit N] [--max-new N] [--seed S] [--backend gpu|cpu]
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { EngineError } from '../engine/errors.ts';
import { heldOutSplit, parseDataset } from '../method/datasets/index.ts';
import { loadRanker, loadStudent, solve } from '../method/eval.ts';
import { parseKind, readText, withArgErrors } from './check-answer.ts';
import { loadAnyModel, makeBackend, type BackendKind } from './load.ts';
import { DEFAULT_MODEL, readStageDir } from './train.ts';

export async function sampleCommand(argv: string[]): Promise<number> {
  const { values } = withArgErrors('sample', () =>
    parseArgs({
      args: argv,
      options: {
        data: { type: 'string' },
        out: { type: 'string' },
        model: { type: 'string', default: DEFAULT_MODEL },
        tokenizer: { type: 'string' },
        adapters: { type: 'string' },
        ranker: { type: 'string' },
        kind: { type: 'string', default: 'arith' },
        m: { type: 'string', default: '16' },
        temperature: { type: 'string', default: '0.7' },
        split: { type: 'string', default: 'held-out' },
        limit: { type: 'string' },
        'max-new': { type: 'string', default: '96' },
        seed: { type: 'string', default: '1' },
        backend: { type: 'string', default: 'gpu' },
      },
      strict: true,
    }),
  );
  if (!values.data || !values.out)
    throw new EngineError('BAD_ARGUMENT', 'sample needs --data <file> and --out <file>');
  const kind = parseKind('sample', values.kind);
  const m = Number(values.m);
  const temperature = Number(values.temperature);
  if (!Number.isInteger(m) || m < 1) throw new EngineError('BAD_ARGUMENT', '--m must be a positive integer');
  if (!(temperature >= 0)) throw new EngineError('BAD_ARGUMENT', '--temperature must be ≥ 0');
  const ds = parseDataset(await readText('sample', values.data), { kind, name: values.data });
  const parts = heldOutSplit(ds, { fraction: 0.1, seed: 0 });
  let problems =
    values.split === 'all'
      ? ds.problems
      : values.split === 'train'
        ? parts.train.problems
        : parts.heldOut.problems;
  if (values.limit) problems = problems.slice(0, Math.max(0, Number(values.limit)));
  if (problems.length === 0)
    throw new EngineError('BAD_ARGUMENT', `no questions in the ${values.split} split`);
  const be = await makeBackend(values.backend as BackendKind);
  const { model, tokenizer } = await loadAnyModel(be as never, values.model, values.tokenizer);
  const dir = values.adapters ? await readStageDir(values.adapters) : { stage: null, adapters: {} };
  const student = loadStudent(model, dir.adapters, dir.stage);
  const ranker = values.ranker
    ? loadRanker(model, tokenizer, (await readStageDir(values.ranker)).adapters)
    : null;
  const lines: string[] = [];
  try {
    // m copies of each question, decoded m at a time (one question per batch when m ≥ 16)
    const questions = problems.flatMap((p) => Array.from({ length: m }, () => p.question));
    const texts = await solve(model, student, tokenizer, questions, {
      maxNew: Number(values['max-new']),
      batch: Math.min(64, Math.max(m, 16)),
      temperature,
      seed: Number(values.seed),
      onBatch: (done, total) => process.stderr.write(`\rsampled ${done}/${total}`),
    });
    process.stderr.write('\n');
    const scores = ranker
      ? await ranker.score(texts.map((t, i) => ({ question: questions[i]!, rationale: t })))
      : null;
    problems.forEach((p, q) => {
      const samples = texts
        .slice(q * m, (q + 1) * m)
        .map((text, j) => (scores ? { text, score: scores[q * m + j]! } : { text }));
      lines.push(JSON.stringify({ id: p.id, question: p.question, gold: p.gold, samples }));
    });
  } finally {
    student.destroy();
    ranker?.destroy();
  }
  await writeFile(values.out, lines.join('\n') + '\n');
  process.stdout.write(
    JSON.stringify({ out: values.out, questions: problems.length, m, scored: !!ranker }) + '\n',
  );
  return 0;
}
