/**
 * `d2g eval`: a student (model + optional stage adapters) on a dataset — per-sequence losses of
 * the teacher's rationales (teacher forcing) and greedy accuracy on the questions, as JSON.
 *   npm run d2g -- eval --data F [--model M] [--tokenizer T] [--adapters DIR] [--kind K]
 *        [--split held-out|train|all] [--limit N] [--max-new N] [--batch B] [--texts] [--backend gpu|cpu]
 */
import { parseArgs } from 'node:util';
import { EngineError } from '../engine/errors.ts';
import { heldOutSplit, parseDataset } from '../method/datasets/index.ts';
import { accuracyOf, loadStudent, sequenceLosses, solve } from '../method/eval.ts';
import { encodeExample } from '../method/stages/text.ts';
import { parseKind, readText, withArgErrors } from './check-answer.ts';
import { loadAnyModel, makeBackend, type BackendKind } from './load.ts';
import { DEFAULT_MODEL, readStageDir } from './train.ts';

export async function evalCommand(argv: string[]): Promise<number> {
  const { values } = withArgErrors('eval', () =>
    parseArgs({
      args: argv,
      options: {
        data: { type: 'string' },
        model: { type: 'string', default: DEFAULT_MODEL },
        tokenizer: { type: 'string' },
        adapters: { type: 'string' },
        kind: { type: 'string', default: 'arith' },
        split: { type: 'string', default: 'held-out' },
        'held-out': { type: 'string', default: '0.1' },
        limit: { type: 'string' },
        'max-new': { type: 'string', default: '96' },
        batch: { type: 'string', default: '16' },
        texts: { type: 'boolean', default: false },
        backend: { type: 'string', default: 'gpu' },
      },
      strict: true,
    }),
  );
  if (!values.data) throw new EngineError('BAD_ARGUMENT', 'eval needs --data <file>');
  const kind = parseKind('eval', values.kind);
  if (!['held-out', 'train', 'all'].includes(values.split))
    throw new EngineError('BAD_ARGUMENT', '--split is held-out, train or all');
  const ds = parseDataset(await readText('eval', values.data), { kind, name: values.data });
  const fraction = Number(values['held-out']);
  if (!(fraction > 0 && fraction < 1))
    throw new EngineError('BAD_ARGUMENT', '--held-out is the held-out fraction, between 0 and 1 (e.g. 0.2)');
  const parts = heldOutSplit(ds, { fraction, seed: 0 });
  let problems =
    values.split === 'all'
      ? ds.problems
      : values.split === 'train'
        ? parts.train.problems
        : parts.heldOut.problems;
  if (values.limit) problems = problems.slice(0, Math.max(0, Number(values.limit)));
  if (problems.length === 0)
    throw new EngineError('BAD_ARGUMENT', `no questions in the ${values.split} split of ${values.data}`);
  const be = await makeBackend(values.backend as BackendKind);
  const { model, tokenizer } = await loadAnyModel(be as never, values.model, values.tokenizer);
  const dir = values.adapters ? await readStageDir(values.adapters) : { stage: null, adapters: {} };
  const student = loadStudent(model, dir.adapters, dir.stage);
  try {
    const seqs = problems.flatMap((p) =>
      p.rationales.map((r, i) => ({
        id: `${p.id}#${i}`,
        correct: r.correct,
        ex: encodeExample(tokenizer, p.question, r.text),
      })),
    );
    const losses = seqs.length
      ? await sequenceLosses(
          model,
          student,
          seqs.map((s) => s.ex),
        )
      : [];
    const texts = await solve(
      model,
      student,
      tokenizer,
      problems.map((p) => p.question),
      {
        maxNew: Number(values['max-new']),
        batch: Number(values.batch),
      },
    );
    const acc = accuracyOf(
      kind,
      texts,
      problems.map((p) => p.goldAnswer),
    );
    const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
    const out = {
      model: values.model,
      adapters: values.adapters ?? null,
      student: student.kind,
      split: values.split,
      n: acc.n,
      accuracy: acc.accuracy,
      ci95: acc.ci95,
      mean_loss_pos: mean(losses.filter((_, i) => seqs[i]!.correct)),
      mean_loss_neg: mean(losses.filter((_, i) => !seqs[i]!.correct)),
      losses: seqs.map((s, i) => ({ id: s.id, correct: s.correct, loss: losses[i] })),
      ...(values.texts
        ? { answers: problems.map((p, i) => ({ id: p.id, text: texts[i], correct: acc.solved[i] })) }
        : {}),
    };
    process.stdout.write(JSON.stringify(out) + '\n');
  } finally {
    student.destroy();
  }
  return 0;
}
